"""Where registered models are: `Model.get_model_path` over the Azure ML app layout.

Models live at `AML_APP_ROOT/azureml-models/NAME/VERSION/<file or folder under its registered basename>`;
`AZUREML_MODEL_DIR` is the VERSION folder for one model and the `azureml-models` folder for several.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from .contract import APP_ROOT_VAR, DEFAULT_APP_ROOT, MODEL_DIR_VAR, MODELS_DIRNAME


class ModelNotFoundError(FileNotFoundError):
    """The named model (or version) is not in the app's `azureml-models` folder."""


def models_root(environ: Optional[dict[str, str]] = None) -> Path:
    """The `azureml-models` folder, found from `AZUREML_MODEL_DIR` or else `AML_APP_ROOT`."""
    env = os.environ if environ is None else environ
    model_dir = env.get(MODEL_DIR_VAR)
    if model_dir:
        path = Path(model_dir)
        if path.name == MODELS_DIRNAME:
            return path
        if path.parent.parent.name == MODELS_DIRNAME:
            return path.parent.parent
    return Path(env.get(APP_ROOT_VAR) or DEFAULT_APP_ROOT) / MODELS_DIRNAME


def get_model_path(model_name: str, version: Optional[Union[int, str]] = None, _workspace: object = None) -> str:
    """The registered file or folder of `model_name` (latest version when `version` is None)."""
    root = models_root()
    name_dir = root / model_name
    if not name_dir.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise ModelNotFoundError(
            f"Model {model_name!r} is not in {root} (models there: {', '.join(known) or 'none'}); "
            f"register it for this deployment or fix the name passed to Model.get_model_path"
        )
    versions = [p for p in name_dir.iterdir() if p.is_dir()]
    if version is None:
        if not versions:
            raise ModelNotFoundError(f"Model {model_name!r} has no version folder under {name_dir}")
        version_dir = max(versions, key=_version_key)
    else:
        version_dir = name_dir / str(version)
        if not version_dir.is_dir():
            known = ", ".join(sorted((p.name for p in versions), key=_version_key_str)) or "none"
            raise ModelNotFoundError(
                f"Model {model_name!r} version {version} is not in {name_dir} (versions there: {known})"
            )
    entries = [p for p in version_dir.iterdir() if not p.name.startswith(".")]
    return str(entries[0] if len(entries) == 1 else version_dir)


def _version_key(path: Path) -> tuple[int, Union[int, str]]:
    return _version_key_str(path.name)


def _version_key_str(name: str) -> tuple[int, Union[int, str]]:
    return (1, int(name)) if name.isdigit() else (0, name)  # type: ignore[return-value]
