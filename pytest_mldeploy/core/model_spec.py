"""`models:` of a deployment in `mldeploy.yaml`: one model to register and serve."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Optional

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pytest_mldeploy.core.names import check_name
from pytest_mldeploy.core.project_paths import resolve_path
from pytest_mldeploy.core.strict_model import StrictModel, Text


class ModelSpec(StrictModel):
    """One model to register and serve: a file or a folder, with Azure ML's metadata.

    Without `path`, `name` (and `version`, else the latest) names a model already in the local
    registry, as `model: azureml:NAME:VERSION` does in an Azure ML v2 deployment.
    """

    path: Optional[Path] = None
    name: str = Field("", validate_default=True)
    version: Optional[int] = Field(None, ge=1)
    tags: Dict[Text, Text] = {}
    properties: Dict[Text, Text] = {}
    description: Optional[Text] = None
    framework: Optional[Text] = None
    framework_version: Optional[Text] = None

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        """Without a name, a model is named after its file (`models/m.pkl` -> `m`)."""
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("path"), str):
            stem = Path(data["path"].rstrip("/\\")).name.split(".")[0]
            data = {**data, "name": re.sub(r"[^A-Za-z0-9._-]", "_", stem)}
        return data

    @field_validator("path")
    @classmethod
    def _path_exists(cls, value: Optional[Path], info: ValidationInfo) -> Optional[Path]:
        return None if value is None else resolve_path(value, info, "any", walk=True)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not value:
            raise ValueError("give path (a file or folder), or the name (and version) of a registered model")
        return check_name(value, "model name")
