"""Planted fault: a pickle that says it was written by scikit-learn 0.24.2 (another major version).

Python 3.11 has no scikit-learn 0.24 wheel, so the pickle is written by the installed version with
the version stamp scikit-learn itself writes (`_sklearn_version`, read back by
`BaseEstimator.__setstate__`) set to 0.24.2: exactly what loading a real 0.24.2 pickle reports.
"""
from pathlib import Path

import joblib
from sklearn.base import BaseEstimator
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    x, y = load_diabetes(return_X_y=True)
    model = Ridge(alpha=0.5).fit(x, y)
    original = BaseEstimator.__getstate__
    BaseEstimator.__getstate__ = lambda self: {**original(self), "_sklearn_version": "0.24.2"}
    try:
        joblib.dump(model, HERE / "models" / "old.pkl")
    finally:
        BaseEstimator.__getstate__ = original
