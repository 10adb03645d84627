"""Train an iris classifier with scikit-learn and convert it to ONNX with skl2onnx (`models/iris.onnx`).

Offline and deterministic: the data set ships with scikit-learn and the model has no randomness.
The graph has one input, `float_input` (N x 4 floats), and two outputs: `label` (the class) and
`probabilities` (one per class; skl2onnx's ZipMap is turned off, so it is a plain N x 3 tensor).
Needs scikit-learn, skl2onnx and onnx (the dev extra).
"""
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
MODEL_PATH = HERE / "models" / "iris.onnx"


def main() -> Path:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    features, target = load_iris(return_X_y=True)
    features = features.astype("float32")
    model = LogisticRegression(max_iter=500).fit(features, target)
    onnx_model = convert_sklearn(
        model, initial_types=[("float_input", FloatTensorType([None, 4]))],
        options={id(model): {"zipmap": False}}, target_opset=17,
    )
    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    MODEL_PATH.write_bytes(onnx_model.SerializeToString())
    return MODEL_PATH


if __name__ == "__main__":
    print(f"wrote {main()}")
