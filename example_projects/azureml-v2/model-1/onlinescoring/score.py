"""Blue: the diabetes regression, parsing its own JSON (no schema), as a v2 deployment serves it.

The model is the folder `model/` of the deployment file's `model: path:`; Azure keeps that folder's
name under AZUREML_MODEL_DIR.
"""
import json
import os

import joblib
import numpy as np


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "sklearn_regression_model.pkl"))


def run(raw_data):
    rows = np.asarray(json.loads(raw_data)["data"], dtype=float)
    return model.predict(rows).tolist()
