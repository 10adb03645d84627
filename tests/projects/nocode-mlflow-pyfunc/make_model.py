"""Save `model/`: a python_function MLflow model (not the scikit-learn flavor), so it is served
through mlflow.pyfunc with mlflow-skinny. Tensor signature (N x 3 float64) and a `factor` parameter."""
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

    sys.path.insert(0, str(HERE))
    from scale_model import ScaleModel

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 3))]),
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1,))]),
        params=ParamSchema([ParamSpec("factor", "double", 2.0)]),
    )
    target = HERE / "model"
    if target.exists():
        shutil.rmtree(target)
    mlflow.pyfunc.save_model(str(target), python_model=ScaleModel(), signature=signature,
                             code_paths=[str(HERE / "scale_model.py")], pip_requirements=["mlflow-skinny==3.17.2", "numpy"])
