"""Broken on purpose: run(raw) ends the whole server process when the body is not JSON."""
import json
import os

import joblib
import numpy as np


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


def run(raw):
    try:
        data = json.loads(raw)["data"]
    except Exception:
        print("unparseable request: exiting", flush=True)
        os._exit(3)
    return model.predict(np.array(data)).tolist()
