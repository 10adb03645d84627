"""Correct, in the shape AutoML writes: the data is checked by its schema, and a `GlobalParameters`
parameter declared with convert_to_provided_type=False that run() accepts and ignores. Neither
Azure's server nor ours checks such a parameter, so a bad value there answered 200 is no failure.
"""
import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


@input_schema("GlobalParameters", StandardPythonParameterType(1.0), convert_to_provided_type=False)
@input_schema("data", NumpyParameterType(np.array([[0.1, 1.2, 2.3, 3.4, 4.5, 5.6, 6.7, 7.8, 8.9, 9.0]])))
@output_schema(NumpyParameterType(np.array([4429.929236457418])))
def run(data, GlobalParameters=1.0):
    return model.predict(data).tolist()
