"""Broken on purpose: run() raises for any feature value above 1e6, a request its schema accepts."""
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


@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    if (data > 1e6).any():
        raise ValueError(f"feature value {data.max()} is beyond the range the model was trained on")
    return model.predict(data).tolist()
