"""Log the example's diabetes model as an MLflow model folder (`model/`), offline and deterministic.

The data set ships with scikit-learn; the model is saved with `mlflow.sklearn.save_model`, which
writes `MLmodel` (flavors and signature), `model.pkl`, `requirements.txt`, `conda.yaml` and
`python_env.yaml`. No tracking server is involved. Needs `mlflow-skinny` (or `mlflow`) and the
pinned scikit-learn.
"""
import shutil
from pathlib import Path

from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE / "model"


def main() -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge(alpha=0.5).fit(features, target)
    signature = infer_signature(features, model.predict(features))
    if MODEL_DIR.exists():
        shutil.rmtree(MODEL_DIR)
    mlflow.sklearn.save_model(
        model, str(MODEL_DIR), signature=signature, input_example=features.head(2),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE,
    )
    return MODEL_DIR


if __name__ == "__main__":
    print(f"wrote {main()}")
