"""Built-in scoring scripts for deployments without an entry script (Azure's "no-code" deployments).

mldeploy's core reads the model (an MLflow folder, a scikit-learn pickle, an ONNX graph), writes a
small JSON description of it into the app root (`mldeploy-scorer.json`, named by the setting
`MLDEPLOY_SCORER`) and installs what the model needs. The server then serves the model with one of
these scorers instead of importing a score.py. Each scorer publishes the request schema it enforces
(from the MLflow signature, the ONNX graph or the estimator), so the swagger checks, the property
and robustness checks, the profile and the compare work as for any entry script.

Scorers import their libraries (mlflow, onnxruntime, scikit-learn, pandas, numpy) lazily: only
the image of a model that needs them installs them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ..contract import SCORER_VAR
from .base import InputRejected, Scorer, ScorerError

SPEC_FILENAME = "mldeploy-scorer.json"
#: scorer name in the spec -> module under this package
SCORERS = {"mlflow": "mlflow_model", "sklearn": "sklearn_model", "onnx": "onnx_model"}

__all__ = ["InputRejected", "Scorer", "ScorerError", "SPEC_FILENAME", "SCORERS", "load_scorer", "read_spec"]


def read_spec(app_root: Path, spec_path: str) -> dict[str, Any]:
    """The scorer description `spec_path` (relative to the app root) as a dict; ScorerError when unusable."""
    path = (app_root / spec_path).resolve()
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScorerError(f"built-in scorer description {path} cannot be read ({exc.strerror}); "
                          f"{SCORER_VAR} must name the {SPEC_FILENAME} mldeploy wrote into the app root") from None
    except ValueError as exc:
        raise ScorerError(f"built-in scorer description {path} is not JSON ({exc})") from None
    if not isinstance(spec, dict) or spec.get("scorer") not in SCORERS or not isinstance(spec.get("model"), str):
        raise ScorerError(f"built-in scorer description {path} needs 'scorer' (one of {', '.join(SCORERS)}) "
                          f"and 'model' (the model's path in the app root)")
    return spec


def load_scorer(app_root: Path, spec_path: str, model_dir: Optional[str] = None) -> Scorer:
    """The scorer the description names, not yet initialised (its init() loads the model)."""
    import importlib

    spec = read_spec(app_root, spec_path)
    module = importlib.import_module(f"{__name__}.{SCORERS[spec['scorer']]}")
    model_path = (app_root / spec["model"]).resolve()
    if not model_path.exists():
        raise ScorerError(f"the model {model_path} named by {spec_path} does not exist in the app root")
    return module.SCORER(model_path, spec)
