"""Azure's most common form: a numpy sample with enforce_shape=False (the inner width is not checked by inference_schema)."""
import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


input_sample = np.array([[10, 9, 8, 7, 6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], dtype="float64")
output_sample = np.array([3726.995, 3726.995])


@input_schema("data", NumpyParameterType(input_sample, enforce_shape=False))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    return model.predict(data).tolist()
