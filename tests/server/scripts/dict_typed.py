"""A StandardPythonParameterType dict of named features (ints, floats and a string), read by key in run()."""
import os

import joblib
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


input_sample = {"age": 50, "sex": 1, "bmi": 0.06, "bp": 0.02, "s1": -0.04, "s2": -0.03, "s3": -0.04, "s4": 0.0,
                "s5": 0.02, "s6": -0.01, "unit": "mg/dl"}


@input_schema("patient", StandardPythonParameterType(input_sample))
@output_schema(StandardPythonParameterType({"prediction": 150.0, "unit": "mg/dl"}))
def run(patient):
    row = [float(patient[name]) for name in FEATURES]
    return {"prediction": float(model.predict([row])[0]), "unit": patient["unit"].strip()}
