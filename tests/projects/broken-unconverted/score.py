"""Broken on purpose: the schema is declared, but with convert_to_provided_type=False run() gets the
raw JSON value and trusts it, so a request the schema rejects (a string, a short row) reaches the
model and is answered 500.
"""
import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


input_sample = np.array([[0.1, 1.2, 2.3, 3.4, 4.5, 5.6, 6.7, 7.8, 8.9, 9.0]])
output_sample = np.array([4429.929236457418])


@input_schema("data", NumpyParameterType(input_sample), convert_to_provided_type=False)
@output_schema(NumpyParameterType(output_sample))
def run(data):
    return model.predict(np.array(data, dtype=float)).tolist()
