"""Save `model/`: an MLflow scikit-learn pipeline over a string column and two number columns.

Columns of different JSON types: the built-in scorer publishes `input_data` as row objects.
The string column is one-hot encoded with handle_unknown="ignore", so any string is accepted.
"""
import shutil
from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    import mlflow.sklearn
    from mlflow.models import infer_signature

    frame = pd.DataFrame({"city": ["Oslo", "Bergen", "Oslo", "Tromsø"], "rooms": [2, 3, 4, 1],
                          "area": [50.0, 72.5, 90.0, 30.0]})
    price = [3.1, 3.9, 5.2, 1.8]
    model = make_pipeline(
        ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"),
        Ridge(alpha=1.0),
    ).fit(frame, price)
    target = HERE / "model"
    if target.exists():
        shutil.rmtree(target)
    mlflow.sklearn.save_model(model, str(target), signature=infer_signature(frame, model.predict(frame)),
                              input_example=frame.head(2), serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE)
