"""Read `mldeploy.yaml` into a `Project`: validated, defaults filled in, every path absolute and existing.

The YAML is checked with pydantic models that forbid unknown keys (`core/strict_model.py` words
their errors as `FILE: key.path: problem`). A deployment's sections are here and beside it:
`models` in `core/model_spec.py`, `environment` in `core/environment_spec.py`. Keys naming Azure
ML files are replaced by the keys they stand for in `core/azure_files.py`; the fence around the
project's paths is `core/project_paths.py`.
"""
from __future__ import annotations

import difflib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Set, Tuple, Union

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pytest_mldeploy.core import azure_v2, nocode
from pytest_mldeploy.core.azure_files import apply_azure_files
from pytest_mldeploy.core.base_image import DEFAULT_BASE_IMAGE, is_azure_curated
from pytest_mldeploy.core.compare_spec import CompareSpec
from pytest_mldeploy.core.environment_spec import EnvironmentSpec
from pytest_mldeploy.core.model_spec import ModelSpec
from pytest_mldeploy.core.names import check_name
from pytest_mldeploy.core.project_paths import ALLOWED_OUTSIDE_KEY, CONFIG_FILENAME, escaping_symlink_in_source, resolve_path
from pytest_mldeploy.core.strict_model import StrictModel, check_keys, format_errors, show_value
from pytest_mldeploy.core.text_files import read_yaml_strictly, shown_path
from pytest_mldeploy.errors import ConfigError

__all__ = [
    "AuthSpec", "CONFIG_FILENAME", "DEFAULT_BASE_IMAGE", "Deployment", "EnvironmentSpec", "Gates", "ModelSpec",
    "ProfileSpec", "Project", "Resources", "find_config", "load_project",
]

BASE_IMAGE_ENV = "MLDEPLOY_BASE_IMAGE"
DEFAULT_REGISTRY_DIRNAME = ".mldeploy"


class Resources(StrictModel):
    """CPU cores and memory the service gets (Azure ACI defaults: 0.1 core, 0.5 GB), and the same in Docker's units.

    `memory_gb` is in GiB, as Azure's is. The Docker target starts a container with `nano_cpus`
    and `memory_bytes`; `from_docker` reads them back from a container's `HostConfig`.
    """

    cpu: float = Field(0.1, gt=0)
    memory_gb: float = Field(0.5, gt=0)

    @property
    def nano_cpus(self) -> int:
        """`cpu` as Docker's NanoCpus (1 CPU = 10^9)."""
        return int(self.cpu * 1e9)

    @property
    def memory_bytes(self) -> int:
        """`memory_gb` in bytes: Docker's `Memory` (and `MemorySwap`, so the service cannot swap)."""
        return int(self.memory_gb * 1024**3)

    @classmethod
    def from_docker(cls, host_config: Mapping[str, Any]) -> Optional["Resources"]:
        """The limits in a container's `docker inspect` `HostConfig`; None when it runs without either one."""
        nano, memory = int(host_config.get("NanoCpus") or 0), int(host_config.get("Memory") or 0)
        if not (nano and memory):
            return None
        return cls(cpu=nano / 1e9, memory_gb=memory / 1024**3)


class ProfileSpec(StrictModel):
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
        return None if value is None else resolve_path(value, info, "file or folder")


class Gates(StrictModel):
    """Limits a profiled service must meet; each is checked only when set."""

    latency_p95_ms: Optional[float] = Field(None, gt=0)
    latency_p99_ms: Optional[float] = Field(None, gt=0)
    min_qps: Optional[float] = Field(None, ge=0)
    max_error_rate: Optional[float] = Field(None, ge=0, le=1)
    memory_gb: Optional[float] = Field(None, gt=0)
    cpu: Optional[float] = Field(None, gt=0)


class AuthSpec(StrictModel):
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


class Deployment(StrictModel):
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
        """Replace `inference_config`, `deployment_config` and `online_deployment` by the inline keys they stand for."""
        return apply_azure_files(data, info.context) if isinstance(data, dict) else data

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
        return None if value is None else resolve_path(value, info, "file")

    @field_validator("source_directory")
    @classmethod
    def _source_dir(cls, value: Optional[Path], info: ValidationInfo) -> Path:
        context = info.context or {}
        root = Path(context.get("root") or os.getcwd())
        source = root if value is None else resolve_path(value, info, "dir")
        if "root" in context:
            problem = escaping_symlink_in_source(source, root, context.get("allowed_outside") or (), context.get("registry"))
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
        full = resolve_path(value, info, "file", base=source)
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


@dataclass
class Project:
    """A loaded `mldeploy.yaml`: where it is, where the registry lives, and its deployments."""

    config_path: Path
    root: Path
    registry_dir: Path
    base_image: str
    deployments: Dict[str, Deployment] = field(default_factory=dict)
    #: `compare:` (how `mldeploy compare` judges a candidate; core/compare_spec.py).
    compare: CompareSpec = field(default_factory=CompareSpec)

    def deployment(self, name: Optional[str] = None, how_to_name: str = "name one") -> Deployment:
        """The deployment called `name`; without a name, the only one.

        Otherwise a `ConfigError` listing the deployments there are; `how_to_name` tells how the
        caller names one (a command-line argument, a pytest option) when there are several.
        """
        shown = shown_path(self.config_path)
        if name is None:
            if len(self.deployments) == 1:
                return next(iter(self.deployments.values()))
            raise ConfigError(
                f"{shown}: deployments: {len(self.deployments)} deployments ({', '.join(self.deployments)}); {how_to_name}"
            )
        if name in self.deployments:
            return self.deployments[name]
        close = difflib.get_close_matches(name, list(self.deployments), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{shown}: deployments: no deployment {name!r}{hint}; there are: {', '.join(sorted(self.deployments)) or 'none'}"
        )


class _ProjectFile(StrictModel):
    deployments: Dict[str, Any]
    registry: Optional[str] = None
    allowed_outside_paths: List[str] = []
    base_image: Optional[str] = None
    defaults: Dict[str, Any] = {}
    compare: CompareSpec = Field(default_factory=CompareSpec)


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
            raise ConfigError(f"{shown_path(config)}: does not exist")
    shown = shown_path(config)
    root = config.parent
    data = read_yaml_strictly(config, shown)
    if config.name not in (CONFIG_FILENAME, "mldeploy.yml") and azure_v2.is_deployment_data(data):
        return _load_online_deployment(config, shown, data)
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: expected a mapping with a 'deployments' key, got {show_value(data)}")
    try:
        top = _ProjectFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, shown, _ProjectFile)) from None
    if not top.deployments:
        raise ConfigError(f"{shown}: deployments: empty; declare at least one deployment")
    check_keys(top.defaults, Deployment, shown, "defaults", exclude={"name"})
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
            messages.append(format_errors(exc, shown, Deployment, ("deployments", name)))
    if messages:
        raise ConfigError("\n".join(messages))
    env_image = os.environ.get(BASE_IMAGE_ENV)
    project_image = env_image or top.base_image or DEFAULT_BASE_IMAGE
    for name, deployment in deployments.items():
        _choose_base_image(deployment, name, env_image, top.base_image)
    return Project(config_path=config, root=root, registry_dir=registry, base_image=project_image, deployments=deployments,
                   compare=top.compare)


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
        raise ConfigError(format_errors(exc, shown, Deployment).replace(f"{shown}: online_deployment.", f"{shown}: ")) from None
    _choose_base_image(deployment, name, os.environ.get(BASE_IMAGE_ENV), None)
    return Project(config_path=config, root=root, registry_dir=registry,
                   base_image=os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE, deployments={name: deployment})


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
