"""Broken on purpose: run(raw) has no schema and parses the body itself, unguarded.

A body that is not JSON, or JSON without "data", raises inside run() and is answered 500.
"""
import json
import os

import joblib
import numpy as np


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


def run(raw):
    data = np.array(json.loads(raw)["data"])
    return model.predict(data).tolist()
