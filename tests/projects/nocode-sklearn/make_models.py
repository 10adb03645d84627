"""Write this test project's two scikit-learn pickles (offline, deterministic; run with the pinned scikit-learn)."""
from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    x, y = load_diabetes(return_X_y=True)
    joblib.dump(Ridge(alpha=0.5).fit(x, y), HERE / "models" / "diabetes.pkl")
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), HERE / "models" / "iris.pkl")
