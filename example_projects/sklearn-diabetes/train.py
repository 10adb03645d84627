"""Train the example's diabetes Ridge model from the data set that ships with scikit-learn.

Deterministic (no randomness, no downloads), so re-running it reproduces the committed
`models/sklearn_regression_model.pkl` for the pinned scikit-learn version.
"""
from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

HERE = Path(__file__).resolve().parent
MODEL_PATH = HERE / "models" / "sklearn_regression_model.pkl"


def main() -> Path:
    features, target = load_diabetes(return_X_y=True)
    model = Ridge(alpha=0.5).fit(features, target)
    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, MODEL_PATH)
    return MODEL_PATH


if __name__ == "__main__":
    print(f"wrote {main()}")
