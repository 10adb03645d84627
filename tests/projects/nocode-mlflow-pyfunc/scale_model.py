"""A tiny MLflow python_function model: each row's sum times the `factor` parameter."""
import mlflow.pyfunc
import numpy as np


class ScaleModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        factor = (params or {}).get("factor", 2.0)
        return np.asarray(model_input, dtype="float64").sum(axis=1) * factor
