"""Read `mldeploy.yaml` into a `Project`: validated, defaults filled in, every path absolute and existing.

The YAML is checked with pydantic models that forbid unknown keys; their errors are rewritten into
one line each, `FILE: key.path: problem`, so a user sees what to fix and never a traceback.
Azure ML CLI files named by `inference_config` / `deployment_config` are translated by
`core/azure_config.py` into the inline keys they replace.
"""
from __future__ import annotations

import difflib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal, Optional, Sequence, Set, Tuple, Union, get_args, get_origin

import yaml
from pydantic_core import PydanticCustomError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pytest_mldeploy.core import azure_config, azure_v2, nocode
from pytest_mldeploy.core import conda as conda_env
from pytest_mldeploy.core.base_image import is_azure_curated
from pytest_mldeploy.errors import ConfigError
from pytest_mldeploy.server import contract

CONFIG_FILENAME = "mldeploy.yaml"
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
BASE_IMAGE_ENV = "MLDEPLOY_BASE_IMAGE"
DEFAULT_REGISTRY_DIRNAME = ".mldeploy"
ALLOWED_OUTSIDE_KEY = "allowed_outside_paths"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
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


def _scalar_to_str(value: Any) -> Any:
    """YAML reads `1.9.1` as text but `1`, `1.5` and `true` as numbers/booleans; tags and the like are text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_scalar_to_str)]


def _check_variable_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError("not a valid environment variable name (letters, digits and '_', not starting with a digit)")
    if name in RESERVED_VARIABLES:
        raise ValueError(f"set by mldeploy from {RESERVED_VARIABLES[name]}; set that instead")
    return name


VariableName = Annotated[str, AfterValidator(_check_variable_name)]


def check_name(value: str, what: str) -> str:
    """Refuse names that cannot be a container name or a folder: `[A-Za-z0-9][A-Za-z0-9._-]*`."""
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return value


def _resolve_path(
    value: Union[str, Path], info: ValidationInfo, kind: str, base: Optional[Path] = None, walk: bool = False
) -> Path:
    """Absolute path of `value` (relative to `base`, default the project root); it must exist as `kind`
    and, symlinks resolved, lie inside the project or a folder of `allowed_outside_paths`."""
    context = info.context or {}
    root = Path(context.get("root") or os.getcwd())
    full = Path(os.path.normpath((base or root) / Path(value).expanduser()))
    if not full.exists():
        raise ValueError(f"{value} does not exist")
    if kind == "file" and not full.is_file():
        raise ValueError(f"{value} is not a file")
    if kind == "dir" and not full.is_dir():
        raise ValueError(f"{value} is not a folder")
    if "root" in context:
        problem = outside_problem(value, full, root, context.get("allowed_outside") or (), walk=walk)
        if problem:
            raise ValueError(problem)
    return full


def outside_problem(
    value: Union[str, Path], full: Path, root: Path, allowed: Sequence[Path] = (), walk: bool = False
) -> Optional[str]:
    """Why `full` may not be used (it leads outside `root` and the `allowed` folders), or None.

    Paths are compared with symlinks resolved, so `models/m.pkl -> /etc/shadow` is as outside as
    `/etc/shadow`. With `walk`, the symlinks inside a folder are checked too (a model folder: the
    registry copies the files they lead to).
    """
    fences = [Path(os.path.realpath(root)), *(Path(os.path.realpath(a)) for a in allowed)]

    def inside(path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return any(real == fence or real.is_relative_to(fence) for fence in fences)

    hint = f"move it into the project folder {root}, or list its folder under {ALLOWED_OUTSIDE_KEY} in {CONFIG_FILENAME}"
    if not inside(full):
        via = "" if os.path.realpath(full) == str(full) else f" (it leads to {os.path.realpath(full)})"
        return f"{value} is outside the project{via}; {hint}"
    if walk and full.is_dir():
        for folder, dirs, files in os.walk(full):
            for name in sorted(dirs + files):
                entry = Path(folder) / name
                if entry.is_symlink() and not inside(entry):
                    rel = entry.relative_to(full).as_posix()
                    return f"{value}: {rel} is a symlink to {os.path.realpath(entry)}, outside the project; {hint}"
    return None


def _escaping_symlink_in_source(source: Path, root: Path, allowed: Sequence[Path], registry: Optional[Path]) -> Optional[str]:
    """The first symlink the app layout would copy through that leads outside the project, as a problem.

    The layout copies `source` following symlinks and leaving out what its ignore rules name
    (`.amlignore`/`.gitignore` and always `.git`, `.venv`, `.mldeploy*`, ...), so the same entries
    are walked here: a `.venv/bin/python -> /usr/bin/python3` is ignored, `creds -> ~/.aws/credentials` is not.
    """
    from pytest_mldeploy.core.layout import _ignore_rules, _ignored

    rules = _ignore_rules(source)
    skip = {os.path.realpath(registry)} if registry else set()
    seen: Set[str] = set()
    for folder, dirs, files in os.walk(source, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop
            dirs[:] = []
            continue
        seen.add(real)
        rel_folder = Path(folder).relative_to(source)
        kept = []
        for name in sorted(dirs):
            rel = (rel_folder / name).as_posix()
            if _ignored(rel, True, rules) or os.path.realpath(Path(folder) / name) in skip:
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(kept + files):
            entry = Path(folder) / name
            rel = (rel_folder / name).as_posix()
            if name in files and _ignored(rel, False, rules):
                continue
            if entry.is_symlink() and entry.exists():  # a dangling one is not copied
                problem = outside_problem(rel, entry, root, allowed)
                if problem:
                    real_target = os.path.realpath(entry)
                    return (f"{rel} in {source} is a symlink to {real_target}, outside the project; "
                            + problem.split("; ", 1)[1])
    return None


class _Strict(BaseModel):
    """Every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelSpec(_Strict):
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
        return None if value is None else _resolve_path(value, info, "any", walk=True)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not value:
            raise ValueError("give path (a file or folder), or the name (and version) of a registered model")
        return check_name(value, "model name")


class EnvironmentSpec(_Strict):
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
        return None if value is None else _resolve_path(value, info, "file")

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
                        f"a variable name was read as the boolean {_show(name)}: YAML takes unquoted "
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
                data = azure_config.read_conda_file(self.conda_file, str(self.conda_file))
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


def read_requirements(path: Path, _seen: Optional[Set[Path]] = None) -> List[str]:
    """Requirement lines of a pip requirements file: comments dropped, `-r` inlined, `-c` paths made absolute."""
    seen = _seen if _seen is not None else set()
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    try:
        text = decode_utf8(path.read_bytes(), str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    lines: List[str] = []
    for lineno, line in _logical_lines(text):
        include = re.fullmatch(r"(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=-r)|(?<=-c))(\S+)", line)
        if include is None:
            lines.append(line)
            continue
        option, target = include.groups()
        full = (path.parent / target).resolve()
        if not full.is_file():
            raise ConfigError(f"{path}:{lineno}: {option} {target}: {full} does not exist")
        if option in ("-r", "--requirement"):
            lines.extend(read_requirements(full, seen))
        else:
            lines.append(f"-c {full}")
    return lines


def _logical_lines(text: str) -> List[Tuple[int, str]]:
    """(first line number, line) with `\\` continuations joined, comments and blank lines removed."""
    out: List[Tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = re.sub(r"(^|\s)#.*$", "", pending + raw).strip()
        pending = ""
        if line:
            out.append((start, line))
    return out


class Resources(_Strict):
    """CPU cores and memory the service gets (Azure ACI defaults: 0.1 core, 0.5 GB)."""

    cpu: float = Field(0.1, gt=0)
    memory_gb: float = Field(0.5, gt=0)


class ProfileSpec(_Strict):
    """How to load-test the service and size its resources."""

    requests: Optional[Path] = None
    duration_s: float = Field(20, gt=0)
    max_concurrency: int = Field(32, ge=1)
    latency_objective_ms: Optional[float] = Field(None, gt=0)
    margin: float = Field(0.15, ge=0)
    min_cpu: float = Field(0.1, gt=0)
    min_memory_gb: float = Field(0.1, gt=0)

    @field_validator("requests")
    @classmethod
    def _requests_exists(cls, value: Optional[Path], info: ValidationInfo) -> Optional[Path]:
        return None if value is None else _resolve_path(value, info, "file or folder")


class Gates(_Strict):
    """Limits a profiled service must meet; each is checked only when set."""

    latency_p95_ms: Optional[float] = Field(None, gt=0)
    latency_p99_ms: Optional[float] = Field(None, gt=0)
    min_qps: Optional[float] = Field(None, ge=0)
    max_error_rate: Optional[float] = Field(None, ge=0, le=1)
    memory_gb: Optional[float] = Field(None, gt=0)
    cpu: Optional[float] = Field(None, gt=0)


class AuthSpec(_Strict):
    """Key auth like Azure ML's: `Authorization: Bearer KEY`; two keys are generated when enabled without keys."""

    enabled: bool = False
    keys: List[str] = []

    @field_validator("keys")
    @classmethod
    def _keys_ok(cls, value: List[str]) -> List[str]:
        for key in value:
            if not re.fullmatch(r"[^\s,]+", key):
                raise ValueError("a key must be non-empty, without spaces or commas")
        return value

    @model_validator(mode="after")
    def _generate(self) -> "AuthSpec":
        if self.enabled and not self.keys:
            self.keys = [secrets.token_urlsafe(32), secrets.token_urlsafe(32)]
        return self


class Deployment(_Strict):
    """One scoring service: its models, code, environment, resources and what it is tested against."""

    name: str
    inference_config: Optional[Path] = None
    deployment_config: Optional[Path] = None
    models: List[ModelSpec] = []
    source_directory: Optional[Path] = Field(None, validate_default=True)
    entry_script: Optional[str] = Field(None, validate_default=True)
    environment: EnvironmentSpec = Field(default_factory=EnvironmentSpec)
    resources: Resources = Field(default_factory=Resources)
    profile: ProfileSpec = Field(default_factory=ProfileSpec)
    gates: Gates = Field(default_factory=Gates)
    auth: AuthSpec = Field(default_factory=AuthSpec)
    cors_origins: List[str] = []
    scoring_timeout_ms: int = Field(60000, gt=0)
    max_body_bytes: int = Field(10485760, gt=0)
    workers: int = Field(1, ge=1)
    health_timeout_s: float = Field(120, gt=0)
    port: Optional[int] = Field(None, ge=1, le=65535)
    base_image: Optional[str] = None
    online_deployment: Optional[Path] = None
    #: Azure's `request_settings.max_concurrent_requests_per_instance`; None: unlimited (see docs/server.md).
    max_concurrent_requests: Optional[int] = Field(None, ge=1)
    instance_count: int = Field(1, ge=1)
    instance_type: Optional[str] = None
    traffic_percent: Optional[int] = Field(None, ge=0, le=100)
    _notices: List[str] = PrivateAttr(default_factory=list)
    #: Which scoring server runs the entry script: ours, or Azure's `azmlinfsrv` (what production runs).
    server: Literal["mldeploy", "azureml"] = "mldeploy"
    _base_image_source: Optional[str] = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _apply_azure_files(cls, data: Any, info: ValidationInfo) -> Any:
        """Replace `inference_config` / `deployment_config` by the inline keys they stand for."""
        if not isinstance(data, dict):
            return data
        ctx = info.context or {}
        root = Path(ctx.get("root") or os.getcwd())
        where = ctx.get("where") or f"deployments.{data.get('name', '?')}"
        shown = ctx.get("shown") or CONFIG_FILENAME
        from_defaults: Set[str] = set(ctx.get("from_defaults") or ())
        data = dict(data)
        if data.get("online_deployment") is not None:
            data = _apply_online_deployment(data, ctx, root, where, shown, from_defaults)
        for key, replaces, translate in (
            ("inference_config", azure_config.INFERENCE_CONFIG_REPLACES, azure_config.translate_inference_config),
            ("deployment_config", azure_config.DEPLOYMENT_CONFIG_REPLACES, azure_config.translate_deployment_config),
        ):
            raw = data.get(key)
            if raw is None:
                continue
            path = _replacing_file(data, key, replaces, "a JSON file", root, ctx, where, shown, from_defaults)
            json_shown = _shown(path)
            try:
                translated = translate(path, json_shown)
            except ValidationError as exc:
                raise ConfigError(_format_errors(exc, json_shown, _azure_model(key))) from None
            for name, value in translated.items():
                if name in data and name not in from_defaults and name not in replaces:
                    raise ConfigError(f"{shown}: {where}.{name}: also set by {key} {raw}; keep one")
            if isinstance(translated.get("environment"), dict) and "conda" in translated["environment"] and isinstance(info.context, dict):
                info.context["conda_origin"] = f"{json_shown}: environment.python.condaDependencies"
            for name in replaces:
                data.pop(name, None)
            data.update(translated)
            data[key] = str(path)
        return data

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        return check_name(value, "deployment name")

    @model_validator(mode="after")
    def _keep_notices(self, info: ValidationInfo) -> "Deployment":
        notices = (info.context or {}).get("notices") or {}
        self._notices = list(notices.get(self.name, ()))
        return self

    @field_validator("inference_config", "deployment_config", "online_deployment")
    @classmethod
    def _config_file(cls, value: Optional[Path], info: ValidationInfo) -> Optional[Path]:
        return None if value is None else _resolve_path(value, info, "file")

    @field_validator("source_directory")
    @classmethod
    def _source_dir(cls, value: Optional[Path], info: ValidationInfo) -> Path:
        context = info.context or {}
        root = Path(context.get("root") or os.getcwd())
        source = root if value is None else _resolve_path(value, info, "dir")
        if "root" in context:
            problem = _escaping_symlink_in_source(source, root, context.get("allowed_outside") or (), context.get("registry"))
            if problem:
                raise ValueError(problem)
        return source

    @field_validator("entry_script")
    @classmethod
    def _entry_script(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        if value is None:
            if info.data.get("models") == []:
                # Only a deployment with a model can go without an entry script (core/nocode.py).
                raise PydanticCustomError("missing", "Field required")
            return None
        source = info.data.get("source_directory")
        if source is None:  # source_directory itself failed; that error is reported
            return value
        full = _resolve_path(value, info, "file", base=source)
        if not full.is_relative_to(source):
            raise ValueError(f"{value} is outside source_directory {source}; move it in")
        return full.relative_to(source).as_posix()

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: List[ModelSpec]) -> List[ModelSpec]:
        names = [m.name for m in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"model name {twice[0]!r} is used twice; give each model its own name")
        return value

    # ---- no entry script: a built-in scorer serves the model (core/nocode.py) --------------------

    _builtin: Optional[nocode.BuiltinScorer] = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _no_code(self) -> "Deployment":
        """Without an entry_script, the one model must be one a built-in scorer serves."""
        if self.entry_script is not None:
            return self
        if len(self.models) != 1:
            raise ValueError(
                "entry_script is required unless the deployment has exactly one model that mldeploy serves "
                "itself (an MLflow model folder, or a model registered with framework ScikitLearn or Onnx)"
            )
        model = self.models[0]
        self._builtin = nocode.detect(model.path, model.framework, model.framework_version, model.properties)
        if not self.environment.declares_packages():
            self.environment.use_model_requirements(
                self._builtin.requirements, self._builtin.python_version,
                f"{model.path.name}/{nocode.MLMODEL} (python_version)",
            )
        return self

    @property
    def builtin_scorer(self) -> Optional[nocode.BuiltinScorer]:
        """How the model is served when there is no entry_script (None with an entry script)."""
        return self._builtin

    def notices(self) -> List[str]:
        """One line each about what was read but does not apply here (cloud-only keys of a v2 file)."""
        return list(self._notices)

    @property
    def base_image_source(self) -> Optional[str]:
        """Who chose `base_image` (`MLDEPLOY_BASE_IMAGE`, `base_image`, `deployments.NAME.base_image`), None for the default."""
        return self._base_image_source

    @property
    def environment_variables(self) -> Dict[str, str]:
        """The deployment's own environment variables for the service (`environment.variables`)."""
        return dict(self.environment.variables)

    @property
    def entry_script_path(self) -> Optional[Path]:
        """The entry script as an absolute path (None for a no-code deployment)."""
        assert self.source_directory is not None
        return None if self.entry_script is None else self.source_directory / self.entry_script


def _replacing_file(
    data: Dict[str, Any], key: str, replaces: Sequence[str], what: str, root: Path, ctx: Dict[str, Any],
    where: str, shown: str, from_defaults: Set[str], check_outside: bool = True,
) -> Path:
    """The existing file named by `key` (an Azure config that stands for the keys `replaces`), checked
    for a text path, keys set beside it, existence and lying inside the project."""
    raw = data[key]
    if not isinstance(raw, str):
        raise ConfigError(f"{shown}: {where}.{key}: expected a path to {what}, got {_show(raw)}")
    mixed = [k for k in replaces if k in data and k not in from_defaults]
    if mixed and key not in from_defaults:
        raise ConfigError(
            f"{shown}: {where}: {key} replaces {', '.join(mixed)}; remove {'it' if len(mixed) == 1 else 'them'} or the {key}"
        )
    path = Path(os.path.normpath(root / Path(raw).expanduser()))
    if not path.is_file():
        raise ConfigError(f"{shown}: {where}.{key}: {raw} does not exist")
    problem = outside_problem(raw, path, root, ctx.get("allowed_outside") or ()) if check_outside else None
    if problem:
        raise ConfigError(f"{shown}: {where}.{key}: {problem}")
    return path


def _apply_online_deployment(
    data: Dict[str, Any], ctx: Dict[str, Any], root: Path, where: str, shown: str, from_defaults: Set[str]
) -> Dict[str, Any]:
    """Replace `online_deployment: FILE` (an Azure ML v2 deployment YAML) by the inline keys it stands for."""
    key, raw = "online_deployment", data["online_deployment"]
    replaces = azure_v2.ONLINE_DEPLOYMENT_REPLACES
    path = _replacing_file(data, key, replaces, "a v2 deployment YAML file", root, ctx, where, shown, from_defaults,
                           check_outside="root" in ctx)
    file_shown = _shown(path)
    try:
        translation = azure_v2.translate_online_deployment(path, file_shown, registry_dir=ctx.get("registry"))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, file_shown, azure_v2.OnlineDeploymentFile)) from None
    except azure_v2.EndpointFileError as exc:
        raise ConfigError(_format_errors(exc.error, _shown(exc.path), azure_v2.OnlineEndpointFile)) from None  # type: ignore[arg-type]
    if "root" in ctx:
        for v2_key, written, full in translation.paths:
            problem = outside_problem(written, full, root, ctx.get("allowed_outside") or ())
            if problem:
                raise ConfigError(f"{file_shown}: {v2_key}: {problem}")
    translated = dict(translation.keys)
    if data.get("base_image") is not None:  # mldeploy.yaml's base image wins over the v2 environment's image
        translated.pop("base_image", None)
    for name, value in translated.items():
        if name in data and name not in from_defaults and name not in replaces:
            raise ConfigError(f"{shown}: {where}.{name}: also set by {key} {raw}; keep one")
    for name in replaces:
        data.pop(name, None)
    data.update(translated)
    data[key] = str(path)
    if isinstance(ctx.get("notices"), dict) and data.get("name"):
        ctx["notices"].setdefault(str(data["name"]), []).extend(translation.notices)
    return data


@dataclass
class Project:
    """A loaded `mldeploy.yaml`: where it is, where the registry lives, and its deployments."""

    config_path: Path
    root: Path
    registry_dir: Path
    base_image: str
    deployments: Dict[str, Deployment] = field(default_factory=dict)

    def deployment(self, name: str) -> Deployment:
        """The deployment called `name`, or a `ConfigError` listing the ones there are."""
        if name in self.deployments:
            return self.deployments[name]
        close = difflib.get_close_matches(name, list(self.deployments), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{_shown(self.config_path)}: deployments: no deployment {name!r}{hint}; "
            f"there are: {', '.join(sorted(self.deployments)) or 'none'}"
        )


class _ProjectFile(_Strict):
    deployments: Dict[str, Any]
    registry: Optional[str] = None
    allowed_outside_paths: List[str] = []
    base_image: Optional[str] = None
    defaults: Dict[str, Any] = {}


def find_config(start: Optional[Path] = None) -> Path:
    """`mldeploy.yaml` in `start` (default: the working directory) or the nearest parent that has one."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"{CONFIG_FILENAME}: not found in {here} or any parent folder; create one (see docs/configuration.md) or pass its path"
    )


def load_project(path: Union[str, Path, None] = None) -> Project:
    """Load and validate `mldeploy.yaml` (found upward from the working directory when `path` is None)."""
    if path is None:
        config = find_config()
    else:
        config = Path(path).expanduser().resolve()
        if config.is_dir():
            config = config / CONFIG_FILENAME
        if not config.is_file():
            raise ConfigError(f"{_shown(config)}: does not exist")
    shown = _shown(config)
    root = config.parent
    data = _read_yaml(config, shown)
    if config.name not in (CONFIG_FILENAME, "mldeploy.yml") and azure_v2.is_deployment_data(data):
        return _load_online_deployment(config, shown, data)
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: expected a mapping with a 'deployments' key, got {_show(data)}")
    try:
        top = _ProjectFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, shown, _ProjectFile)) from None
    if not top.deployments:
        raise ConfigError(f"{shown}: deployments: empty; declare at least one deployment")
    _check_keys(top.defaults, Deployment, shown, "defaults", exclude={"name"})
    allowed_outside = _allowed_outside(top.allowed_outside_paths, root, shown)
    registry = Path(os.path.normpath(root / Path(top.registry).expanduser())) if top.registry else root / DEFAULT_REGISTRY_DIRNAME
    notices: Dict[str, List[str]] = {}
    messages: List[str] = []
    deployments: Dict[str, Deployment] = {}
    for raw_name, raw in top.deployments.items():
        name, where = str(raw_name), f"deployments.{raw_name}"
        if isinstance(raw, dict) and "name" in raw:
            messages.append(f"{shown}: {where}.name: unknown key (a deployment is named by its key under deployments)")
            continue
        merged, from_defaults = _merge_defaults(top.defaults, raw)
        context = {"root": root, "shown": shown, "where": where, "from_defaults": from_defaults,
                   "allowed_outside": allowed_outside, "registry": registry, "notices": notices}
        try:
            payload = {**merged, "name": name} if isinstance(merged, dict) else merged
            deployments[name] = Deployment.model_validate(payload, context=context)
        except ValidationError as exc:
            messages.append(_format_errors(exc, shown, Deployment, ("deployments", name)))
    if messages:
        raise ConfigError("\n".join(messages))
    env_image = os.environ.get(BASE_IMAGE_ENV)
    project_image = env_image or top.base_image or DEFAULT_BASE_IMAGE
    for name, deployment in deployments.items():
        _choose_base_image(deployment, name, env_image, top.base_image)
    return Project(config_path=config, root=root, registry_dir=registry, base_image=project_image, deployments=deployments)


def _choose_base_image(deployment: Deployment, name: str, env_image: Optional[str], top_image: Optional[str]) -> None:
    """MLDEPLOY_BASE_IMAGE, else the deployment's own, else the top-level `base_image`, else the default.

    The deployment's own may come from an SDK-written inferenceconfig.json, which always names an
    Azure curated image: a top-level `base_image` wins over that one.
    """
    own = deployment.base_image
    if env_image:
        deployment.base_image, source = env_image, BASE_IMAGE_ENV
    elif own and not (top_image and is_azure_curated(own)):
        source = f"deployments.{name}.base_image"
    elif top_image:
        deployment.base_image, source = top_image, "base_image"
    else:
        deployment.base_image, source = own or DEFAULT_BASE_IMAGE, None
    deployment._base_image_source = None if is_azure_curated(deployment.base_image) else source


def _allowed_outside(entries: List[str], root: Path, shown: str) -> List[Path]:
    """The folders outside the project that paths may lead into (`allowed_outside_paths`), each existing."""
    out: List[Path] = []
    for number, entry in enumerate(entries):
        folder = Path(os.path.normpath(root / Path(entry).expanduser()))
        if not folder.exists():
            raise ConfigError(f"{shown}: {ALLOWED_OUTSIDE_KEY}[{number}]: {entry} does not exist")
        out.append(folder)
    return out


def _load_online_deployment(config: Path, shown: str, data: Dict[str, Any]) -> Project:
    """A project of one Azure ML v2 deployment file, read as it is (no mldeploy.yaml).

    Its root (the folder its paths must stay inside) is the enclosing git work tree, else the folder
    its own relative paths reach; its registry is the nearest `.mldeploy` folder above the file up
    to that root, else `.mldeploy` beside the file.
    """
    root = azure_v2.project_root(config, data)
    folder = config.parent.resolve()
    registry = folder / DEFAULT_REGISTRY_DIRNAME
    for candidate in (folder, *folder.parents):
        if (candidate / DEFAULT_REGISTRY_DIRNAME).is_dir():
            registry = candidate / DEFAULT_REGISTRY_DIRNAME
            break
        if candidate == root:
            break
    name = azure_v2.deployment_key(config, str(data.get("name") or config.stem))
    notices: Dict[str, List[str]] = {}
    context = {"root": root, "shown": shown, "where": "deployment", "from_defaults": set(),
               "allowed_outside": [], "registry": registry, "notices": notices}
    try:
        deployment = Deployment.model_validate({"name": name, "online_deployment": str(config)}, context=context)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, shown, Deployment).replace(f"{shown}: online_deployment.", f"{shown}: ")) from None
    _choose_base_image(deployment, name, os.environ.get(BASE_IMAGE_ENV), None)
    return Project(config_path=config, root=root, registry_dir=registry,
                   base_image=os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE, deployments={name: deployment})


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen: Set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue
            if duplicate and key != "<<":
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, shown: str) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot be read: {exc.strerror}") from None
    text = decode_utf8(raw, shown)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{shown}: {where}YAML syntax error: {problem}") from None


def decode_utf8(raw: bytes, shown: str) -> str:
    """`raw` as UTF-8 text, or a `ConfigError` naming the line and column of the first byte that is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        bad = raw[exc.start : exc.start + 1].hex()
        raise ConfigError(
            f"{shown}: line {line}, column {column}: not valid UTF-8 (byte 0x{bad}); save the file as UTF-8"
        ) from None


def _merge_defaults(defaults: Dict[str, Any], raw: Any) -> Tuple[Any, Set[str]]:
    """Deep-merge `defaults` under a deployment (the deployment wins; lists are replaced, not joined)."""
    if not isinstance(raw, dict):
        return (dict(defaults) if raw is None and defaults else raw), set(defaults) if raw is None else set()
    return _deep_merge(defaults, raw), {k for k in defaults if k not in raw}


def _deep_merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _shown(path: Path) -> str:
    """A file as the user thinks of it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _azure_model(key: str) -> type:
    return azure_config.InferenceConfigFile if key == "inference_config" else azure_config.DeploymentConfigFile


_EXPECTED = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "path_type": "expected a path",
}


def _format_errors(exc: ValidationError, shown: str, model: type, prefix: Tuple[Any, ...] = ()) -> str:
    """One `FILE: key.path: problem` line per pydantic error."""
    lines: List[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind, ctx = err["type"], err.get("ctx") or {}
        if kind == "extra_forbidden":
            problem = "unknown key" + _suggest(str(loc[-1]), _keys_at(model, loc[:-1]))
        elif kind == "missing":
            problem = "required key is missing"
        elif kind in _EXPECTED:
            problem = f"{_EXPECTED[kind]}, got {_show(err.get('input'))}"
        elif kind == "greater_than":
            problem = f"must be greater than {_show(ctx.get('gt'))}, got {_show(err.get('input'))}"
        elif kind == "greater_than_equal":
            problem = f"must be at least {_show(ctx.get('ge'))}, got {_show(err.get('input'))}"
        elif kind in ("less_than_equal", "less_than"):
            problem = f"must be at most {_show(ctx.get('le', ctx.get('lt')))}, got {_show(err.get('input'))}"
        elif kind == "value_error":
            problem = str(ctx.get("error") or err["msg"])
        else:
            msg = err["msg"]
            problem = msg[:1].lower() + msg[1:]
        path = _loc_text(prefix + loc)
        lines.append(f"{shown}: {path}: {problem}" if path else f"{shown}: {problem}")
    return "\n".join(dict.fromkeys(lines))


def _loc_text(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        if part == "[key]":
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (expected one of: {', '.join(sorted(known))})" if known else ""


def _keys_at(model: Any, loc: Sequence[Any]) -> List[str]:
    """The keys the pydantic model at `loc` (inside `model`) accepts, aliases as written in the file."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            by_key = {(f.alias or n): f for n, f in current.model_fields.items()}
            if part not in by_key:
                return []
            current = by_key[part].annotation
        elif get_origin(current) in (list, tuple, List) and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) in (dict, Dict):
            current = get_args(current)[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [(f.alias or n) for n, f in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Optional[...] and Annotated[...] down to the type that holds the keys."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union:
            members = [a for a in get_args(tp) if a is not type(None)]
            tp = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), members[0])
        else:
            return tp


def _check_keys(data: Dict[str, Any], model: type, shown: str, where: str, exclude: Set[str]) -> None:
    known = [k for k in _keys_at(model, ()) if k not in exclude]
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ConfigError(
            "\n".join(f"{shown}: {where}.{k}: unknown key{_suggest(str(k), known)}" for k in unknown)
        )
