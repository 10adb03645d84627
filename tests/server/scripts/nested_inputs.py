"""Azure's Power BI shape: a nested `Inputs` dict (numpy, pandas, number), `GlobalParameters`, `Results`."""
import os

import joblib
import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


numpy_sample_input = NumpyParameterType(
    np.array([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]], dtype="float64"), enforce_shape=False)
pandas_sample_input = PandasParameterType(pd.DataFrame({"name": ["Sarah", "John"], "age": [25, 26]}))
standard_sample_input = StandardPythonParameterType(0.0)
sample_input = StandardPythonParameterType({"input1": numpy_sample_input, "input2": pandas_sample_input,
                                            "input3": standard_sample_input})
sample_global_parameters = StandardPythonParameterType(1.0)
outputs = StandardPythonParameterType({"Results": StandardPythonParameterType([1.0, 1.0]),
                                       "People": StandardPythonParameterType(["Sarah"])})


@input_schema("Inputs", sample_input)
@input_schema("GlobalParameters", sample_global_parameters)
@output_schema(outputs)
def run(Inputs, GlobalParameters):
    data = Inputs["input1"]
    assert isinstance(data, np.ndarray), type(data)
    people = Inputs["input2"]
    assert isinstance(people, pd.DataFrame), type(people)
    offset = float(Inputs["input3"]) + float(people["age"].sum())
    results = (model.predict(data) * GlobalParameters + offset).tolist()
    return {"Results": results, "People": [str(name) for name in people["name"]]}
