"""`environment:` of a deployment in `mldeploy.yaml`: the service's Python packages, Python version and variables.

The packages come as inline pip lines, a requirements file or a conda environment (mapped to PyPI by
`core/conda.py`); they are read when the config loads, so a broken file fails then, not at build time.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Dict, List, Optional, Tuple

from pydantic import AfterValidator, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from pytest_mldeploy.core import conda as conda_env
from pytest_mldeploy.core.project_paths import CONFIG_FILENAME, resolve_path
from pytest_mldeploy.core.strict_model import StrictModel, Text, show_value
from pytest_mldeploy.core.text_files import read_conda_file, read_requirements
from pytest_mldeploy.server import contract

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Set by mldeploy from other keys; a deployment may not set them through environment.variables.
RESERVED_VARIABLES = {
    contract.APP_ROOT_VAR: "the app layout",
    contract.SOURCE_DIRECTORY_VAR: "source_directory",
    contract.ENTRY_SCRIPT_VAR: "entry_script",
    contract.MODEL_DIR_VAR: "models",
    contract.SERVICE_NAME_VAR: "the deployment's name",
    contract.SCORING_TIMEOUT_MS_VAR: "scoring_timeout_ms",
    contract.CORS_ORIGINS_VAR: "cors_origins",
    contract.WORKER_COUNT_VAR: "workers",
    contract.MAX_BODY_BYTES_VAR: "max_body_bytes",
    contract.MAX_CONCURRENT_REQUESTS_VAR: "max_concurrent_requests",
    contract.AUTH_KEYS_VAR: "auth.keys",
    contract.SCORER_VAR: "the model, when there is no entry_script",
    # Inside an image the server listens on the port Docker publishes and the probe asks there.
    contract.PORT_VAR: "port",
}


def _check_variable_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError("not a valid environment variable name (letters, digits and '_', not starting with a digit)")
    if name in RESERVED_VARIABLES:
        raise ValueError(f"set by mldeploy from {RESERVED_VARIABLES[name]}; set that instead")
    return name


VariableName = Annotated[str, AfterValidator(_check_variable_name)]



class EnvironmentSpec(StrictModel):
    """The Python packages and variables of the service: inline pip lines, a requirements file or a conda environment."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    pip: Optional[List[Text]] = None
    requirements_file: Optional[Path] = Field(None, alias="requirements")
    conda_file: Optional[Path] = None
    conda: Optional[Dict[str, Any]] = None
    python: Optional[str] = None
    variables: Dict[VariableName, Text] = {}
    _lines: List[str] = PrivateAttr(default_factory=list)
    _conda: Optional[conda_env.CondaEnvironment] = PrivateAttr(default=None)
    _conda_where: str = PrivateAttr(default="")
    #: A no-code model's own Python (version, where it says so), when the deployment declares no packages.
    _model_python: Optional[Tuple[str, str]] = PrivateAttr(default=None)

    @field_validator("requirements_file", "conda_file")
    @classmethod
    def _file_exists(cls, value: Optional[Path], info: ValidationInfo) -> Optional[Path]:
        return None if value is None else resolve_path(value, info, "file")

    @field_validator("python", mode="before")
    @classmethod
    def _python_version(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError(f'write the version in quotes, e.g. "3.11": YAML reads it as a number (here {value})')
        if isinstance(value, str) and not re.fullmatch(r"\d+\.\d+", value):
            raise ValueError(f'{value!r} is not a Python version like "3.11"')
        return value

    @field_validator("variables", mode="before")
    @classmethod
    def _no_boolean_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in value:
                if isinstance(name, bool):
                    raise ValueError(
                        f"a variable name was read as the boolean {show_value(name)}: YAML takes unquoted "
                        "ON/OFF/YES/NO/TRUE/FALSE as booleans; quote the name"
                    )
        return value

    @field_validator("conda")
    @classmethod
    def _conda_shape(cls, value: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
        if value is not None and not isinstance(value.get("dependencies", []), list):
            raise ValueError("expected a conda environment mapping with a 'dependencies' list")
        return value

    @model_validator(mode="after")
    def _read_files(self, info: ValidationInfo) -> "EnvironmentSpec":
        """Read the requirements now so a broken file fails at load time, not at build time."""
        forms = (("pip", self.pip), ("requirements", self.requirements_file), ("conda_file", self.conda_file), ("conda", self.conda))
        given = [k for k, v in forms if v is not None]
        if len(given) > 1:
            raise ValueError(f"give one of pip, requirements, conda_file or conda, not {' and '.join(given)}")
        if self.pip is not None:
            self._lines = [line.strip() for line in self.pip if line.strip()]
        elif self.requirements_file is not None:
            self._lines = read_requirements(self.requirements_file)
        elif self.conda_file is not None or self.conda is not None:
            ctx = info.context or {}
            if self.conda_file is not None:
                root = Path(ctx.get("root") or os.getcwd())
                inside = self.conda_file.is_relative_to(root)
                self._conda_where = self.conda_file.relative_to(root).as_posix() if inside else str(self.conda_file)
                data = read_conda_file(self.conda_file, str(self.conda_file))
            else:
                self._conda_where = ctx.get("conda_origin") or f"{ctx.get('shown') or CONFIG_FILENAME}: {ctx.get('where') or 'deployment'}.environment.conda"
                data = self.conda or {}
            self._conda = conda_env.from_conda(data)
            self._lines = list(self._conda.requirements)
        return self

    def declares_packages(self) -> bool:
        """True when `pip`, `requirements`, `conda_file` or `conda` is given (a no-code model then keeps its own out)."""
        return any(v is not None for v in (self.pip, self.requirements_file, self.conda_file, self.conda))

    def use_model_requirements(self, lines: List[str], python: Optional[str], source: str = "the model") -> None:
        """Take a no-code model's own requirements, and its Python as a wish, when the deployment declares none."""
        self._lines = list(lines)
        self._model_python = (python, source) if python else None

    def requirements(self) -> List[str]:
        """The pip requirement lines, whichever form declared them (`-r` includes inlined, paths absolute).

        A conda environment gives its conda packages mapped to PyPI names and versions, then its pip section.
        """
        return list(self._lines)

    def python_version(self) -> Optional[str]:
        """`X.Y` from `python:`, else from a conda environment's `python=X.Y`, else None (the base image's)."""
        model = self._model_python[0] if self._model_python else None
        return self.python or (self._conda.python if self._conda else None) or model

    def python_pin(self) -> Optional[PythonPin]:
        """The Python asked for and by whom, or None: `environment.python` is strict, a conda `python=` is a wish."""
        if self.python:
            return PythonPin(self.python, "environment.python", strict=True)
        if self._conda is not None and self._conda.python:
            return PythonPin(self._conda.python, f"{self._conda_where} ({self._conda.python_spec})", strict=False)
        if self._model_python is not None:
            return PythonPin(self._model_python[0], self._model_python[1], strict=False)
        return None

    def notices(self) -> List[str]:
        """Lines the user should read about this environment (conda packages left out), once per build."""
        return self._conda.notices(self._conda_where) if self._conda is not None else []

    def origins(self) -> Dict[str, str]:
        """pip line -> where it came from, for the conda packages mapped to PyPI (`numpy==1.26.4` -> `numpy=1.26.4 in env.yml`)."""
        if self._conda is None:
            return {}
        return {line: f"conda {spec} in {self._conda_where}" for line, spec in self._conda.origins.items()}


@dataclass(frozen=True)
class PythonPin:
    """A Python version a deployment asks for: `version` "X.Y", `source` for messages, `strict` unless a conda wish."""

    version: str
    source: str
    strict: bool
