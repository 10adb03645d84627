"""Azure's older docs: `from sklearn.externals import joblib`, gone since scikit-learn 0.23."""
import os

from sklearn.externals import joblib


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


def run(data):
    return data
