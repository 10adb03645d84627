"""Planted fault: an MLflow model whose signature disagrees with the model.

The Ridge model is trained on all ten diabetes features, but its signature is inferred from the
first three columns only (a common slip: the signature taken from the wrong frame). The start
must fail with the model's own complaint.
"""
import shutil
from pathlib import Path

from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    import mlflow.sklearn
    from mlflow.models import infer_signature

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge(alpha=0.5).fit(features.to_numpy(), target)
    signature = infer_signature(features.iloc[:, :3], model.predict(features.to_numpy()))
    target_dir = HERE / "model"
    if target_dir.exists():
        shutil.rmtree(target_dir)
    mlflow.sklearn.save_model(model, str(target_dir), signature=signature,
                              serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE)
