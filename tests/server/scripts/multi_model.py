"""Two registered models: found with Model.get_model_path and with AZUREML_MODEL_DIR as the models root."""
import os

import joblib
from azureml.core.model import Model


def init():
    global model, labels, via_env
    model = joblib.load(Model.get_model_path("sklearn_regression_model"))
    labels_dir = Model.get_model_path("labels", version=2)
    with open(os.path.join(labels_dir, "names.txt")) as f:
        labels = f.read().split()
    via_env = os.path.join(os.environ["AZUREML_MODEL_DIR"], "sklearn_regression_model", "1",
                           "sklearn_regression_model.pkl")
    assert os.path.isfile(via_env), via_env


def run(data):
    import json

    rows = json.loads(data)["data"]
    missing = None
    try:
        Model.get_model_path("no_such_model")
    except Exception as exc:
        missing = str(exc)
    return {"predictions": model.predict(rows).tolist(), "labels": labels, "missing": missing,
            "latest_labels": os.path.basename(os.path.dirname(Model.get_model_path("labels")))}
