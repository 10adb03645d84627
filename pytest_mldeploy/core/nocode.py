"""No entry script: what model is this, which built-in scorer serves it, and what must be installed.

Azure deploys some models without a score.py: MLflow model folders (v2 `type: mlflow_model`),
and v1 models registered with `framework: ScikitLearn` or `framework: Onnx`. `detect()` answers
for one model: the built-in scorer (`pytest_mldeploy/server/nocode/`), the JSON description the
server reads (`mldeploy-scorer.json` in the app root), the pip requirements of the service and
its Python version. It is a plain function of the model's path and metadata so that other
readers (v2 YAML, the CLI) can call it too; `ValueError` messages say what is wrong and the fix.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pytest_mldeploy.core import conda
from pytest_mldeploy.core.text_files import read_conda_file, read_requirements

SPEC_FILENAME = "mldeploy-scorer.json"
MLMODEL = "MLmodel"
#: Framework names as Azure ML v1 writes them (`Model.Framework.SCIKITLEARN`, `.ONNX`) and common variants.
_FRAMEWORKS = {"scikitlearn": "sklearn", "scikit-learn": "sklearn", "sklearn": "sklearn", "onnx": "onnx",
               "mlflow": "mlflow"}
#: Packages an MLflow model's requirements.txt lists that serving it with its own flavor loader does not need.
_MLFLOW_ONLY = {"mlflow", "mlflow-skinny"}
SKLEARN_METHODS = ("predict", "predict_proba")


@dataclass(frozen=True)
class BuiltinScorer:
    """How a model without an entry script is served."""

    scorer: str
    """`mlflow`, `sklearn` or `onnx`: the module under `server/nocode/`."""
    requirements: List[str]
    """pip lines the service needs for this model (without the server's own)."""
    python_version: Optional[str] = None
    """`X.Y` the model was saved with, when it says (MLflow); None otherwise."""
    options: Dict[str, Any] = field(default_factory=dict)
    """What the scorer reads besides the model's path (signature, loader, method, ...)."""

    def spec(self, model_path_in_app: str) -> Dict[str, Any]:
        """The JSON description the server reads, for the model at `model_path_in_app` (relative to the app root)."""
        return {"scorer": self.scorer, "model": model_path_in_app, **self.options}


def normalise_framework(framework: Optional[str]) -> Optional[str]:
    """`ScikitLearn`, `scikit-learn`, `sklearn` -> `sklearn`; `Onnx` -> `onnx`; others unchanged (lowercased)."""
    if framework is None:
        return None
    key = re.sub(r"[\s_]", "", str(framework)).lower()
    return _FRAMEWORKS.get(key, key)


def detect(
    model_path: Path,
    framework: Optional[str] = None,
    framework_version: Optional[str] = None,
    properties: Optional[Mapping[str, str]] = None,
) -> BuiltinScorer:
    """The built-in scorer for one model, from its content and registration; ValueError when none fits."""
    path = Path(model_path)
    kind = normalise_framework(framework)
    if path.is_dir() and (path / MLMODEL).is_file():
        return _mlflow(path)
    if kind == "sklearn":
        return _sklearn(path, framework_version, dict(properties or {}))
    if kind == "onnx":
        return _onnx(path, framework_version)
    if path.is_dir():
        raise ValueError(
            f"{path.name} is a folder without an {MLMODEL} file, and no entry_script is given; "
            f"give an entry_script or an MLflow model folder"
        )
    if path.suffix.lower() == ".onnx":
        return _onnx(path, framework_version)
    shown = f"framework {framework!r}" if framework else "no framework"
    raise ValueError(
        f"{path.name} is registered with {shown}, and no entry_script is given; give an entry_script, or register "
        f"the model with framework ScikitLearn or Onnx (or deploy an MLflow model folder)"
    )


# ---- scikit-learn ------------------------------------------------------------------------------


def _sklearn(path: Path, version: Optional[str], properties: Dict[str, str]) -> BuiltinScorer:
    if not path.is_file():
        raise ValueError(f"{path.name}: a ScikitLearn model must be one pickle file, not a folder")
    method = properties.get("method", "predict")
    if method not in SKLEARN_METHODS:
        raise ValueError(f"{path.name}: properties.method {method!r} is not one of {', '.join(SKLEARN_METHODS)}")
    pin = f"scikit-learn=={version}" if version else "scikit-learn"
    return BuiltinScorer("sklearn", [pin, "joblib"], options={"method": method})


# ---- ONNX --------------------------------------------------------------------------------------


def _onnx(path: Path, version: Optional[str]) -> BuiltinScorer:
    if not path.is_file():
        raise ValueError(f"{path.name}: an Onnx model must be one .onnx file, not a folder")
    # framework_version is the ONNX (opset) version the model was written for, not onnxruntime's.
    return BuiltinScorer("onnx", ["onnxruntime", "numpy"], options={})


# ---- MLflow ------------------------------------------------------------------------------------


def read_mlmodel(folder: Path) -> Dict[str, Any]:
    """The `MLmodel` file of an MLflow model folder as a mapping; ValueError naming the file when unreadable."""
    mlmodel = folder / MLMODEL
    try:
        data = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{folder.name}/{MLMODEL} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise ValueError(f"{folder.name}/{MLMODEL} has no 'flavors' mapping; is it an MLflow model?")
    return data


def _signature_part(data: Dict[str, Any], key: str, folder: Path) -> Optional[List[Dict[str, Any]]]:
    raw = (data.get("signature") or {}).get(key)
    if raw in (None, "", "null"):
        return None
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise ValueError(f"{folder.name}/{MLMODEL}: signature.{key} is not JSON ({exc})") from None
    if not isinstance(parsed, list):
        raise ValueError(f"{folder.name}/{MLMODEL}: signature.{key} should be a JSON list")
    return parsed


def _mlflow(folder: Path) -> BuiltinScorer:
    data = read_mlmodel(folder)
    flavors = data["flavors"]
    pyfunc = flavors.get("python_function")
    if not isinstance(pyfunc, dict):
        raise ValueError(f"{folder.name}/{MLMODEL} has no python_function flavor, so it cannot be served "
                         f"without an entry script; give an entry_script")
    sklearn = flavors.get("sklearn")
    own_loader = (
        isinstance(sklearn, dict) and pyfunc.get("loader_module") == "mlflow.sklearn" and not sklearn.get("code")
        and not pyfunc.get("code") and sklearn.get("serialization_format", "cloudpickle") in ("pickle", "cloudpickle")
        and pyfunc.get("predict_fn", "predict") == "predict"
    )
    options: Dict[str, Any] = {
        "loader": "sklearn" if own_loader else "pyfunc",
        "inputs": _signature_part(data, "inputs", folder),
        "outputs": _signature_part(data, "outputs", folder),
        "params": _signature_part(data, "params", folder),
    }
    if own_loader:
        options["pickled_model"] = sklearn.get("pickled_model", "model.pkl")
        options["serialization_format"] = sklearn.get("serialization_format", "cloudpickle")
    example = data.get("saved_input_example_info") or {}
    if isinstance(example, dict) and example.get("artifact_path"):
        options["input_example"] = example["artifact_path"]
    requirements = _mlflow_requirements(folder, pyfunc, data, own_loader)
    version = str(pyfunc.get("python_version") or "")
    match = re.match(r"(\d+)\.(\d+)", version)
    return BuiltinScorer("mlflow", requirements, f"{match.group(1)}.{match.group(2)}" if match else None, options)


def _mlflow_requirements(folder: Path, pyfunc: Dict[str, Any], data: Dict[str, Any], own_loader: bool) -> List[str]:
    """The model's own requirements: `requirements.txt`, else the pip part of its conda file.

    With its own flavor loader the model needs no MLflow at all; otherwise `mlflow` becomes
    `mlflow-skinny` at the same version (what Azure's MLflow images install). pandas is added
    when missing: the scorer reads column signatures into a DataFrame.
    """
    lines: List[str] = []
    txt = folder / "requirements.txt"
    env = pyfunc.get("env")
    conda_name = env.get("conda") if isinstance(env, dict) else env if isinstance(env, str) else None
    if txt.is_file():
        lines = read_requirements(txt)
    elif conda_name and (folder / conda_name).is_file():
        environment = read_conda_file(folder / conda_name, f"{folder.name}/{conda_name}")
        lines = list(conda.from_conda(environment).requirements)
    out: List[str] = []
    names = set()
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            out.append(line)
            continue
        name = canonicalize_name(requirement.name)
        if name in _MLFLOW_ONLY:
            if own_loader:
                continue
            requirement.name = "mlflow-skinny"
            name = "mlflow-skinny"
            line = str(requirement)
        names.add(name)
        out.append(line)
    if not own_loader and "mlflow-skinny" not in names:
        version = data.get("mlflow_version")
        out.append(f"mlflow-skinny=={version}" if version else "mlflow-skinny")
    if "pandas" not in names:
        out.append("pandas")
    if own_loader and (pyfunc.get("serialization_format") == "cloudpickle" or
                       (data["flavors"].get("sklearn") or {}).get("serialization_format", "cloudpickle") == "cloudpickle"):
        if "cloudpickle" not in names:
            out.append("cloudpickle")
    return out
