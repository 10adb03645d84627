"""Azure's pandas form: named columns (ints and floats), records orient, the model fed the frame."""
import os

import joblib
import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.schema_decorators import input_schema, output_schema

COLUMNS = ["AGE", "SEX", "BMI", "BP", "S1", "S2", "S3", "S4", "S5", "S6"]


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


input_sample = pd.DataFrame(data=[{"AGE": 5, "SEX": 2, "BMI": 3.1, "BP": 3.1, "S1": 3.1, "S2": 3.1, "S3": 3.1,
                                   "S4": 3.1, "S5": 3.1, "S6": 3.1}])
output_sample = np.array([0.0])


@input_schema("data", PandasParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    assert isinstance(data, pd.DataFrame), type(data)
    return model.predict(data[COLUMNS].to_numpy(dtype=float)).tolist()
