"""Read Azure ML v2 online deployment YAML files (managed or Kubernetes) as they are written for `az ml`.

A v2 deployment file (`$schema: .../managedOnlineDeployment.schema.json`, or any file with
`endpoint_name` and `code_configuration`) is translated into the inline keys of a deployment of
`mldeploy.yaml`, the way `core/azure_config.py` does for the v1 JSON files. Its endpoint file
(the YAML beside it whose `name` is the deployment's `endpoint_name`) gives the auth mode and the
traffic share. Paths are relative to the file that names them, as `az ml` resolves them.

Each file is validated against a pydantic model of Azure's schema (`core/azure_v2_schema.py`;
unknown keys are errors, so a typo does not pass silently); validation errors propagate as `pydantic.ValidationError` for
`core/azure_files.py` to format with the file's name. Keys that only matter in the cloud are accepted
and named in one notice each (`Translation.notices`). See docs/azureml-v2.md for every key.
Which files are v2 files (and the names they map to) is `azure_v2_files.py`'s job.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml
from pydantic import ValidationError

from pytest_mldeploy.core import azure_vm_sizes
from pytest_mldeploy.core.azure_config import existing_path, lift_service_variables
from pytest_mldeploy.core.azure_v2_files import (
    deployment_key,
    is_deployment_data,
    is_deployment_file,
    is_endpoint_data,
    project_root,
    read_yaml,
    referenced_deployment_files,
)
from pytest_mldeploy.core.azure_v2_schema import EnvironmentAsset, OnlineDeploymentFile, OnlineEndpointFile, Probe
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.core.text_files import shown_path
from pytest_mldeploy.errors import ConfigError, RegistryError

#: Recognising the files is `azure_v2_files.py`'s; its names stay importable from here.
__all__ = [
    "CURATED_ENVIRONMENTS", "ONLINE_DEPLOYMENT_REPLACES", "EndpointFileError", "Translation", "deployment_key",
    "find_endpoint", "is_deployment_data", "is_deployment_file", "is_endpoint_data", "parse_cpu", "parse_memory_gb",
    "project_root", "read_yaml", "referenced_deployment_files", "translate_online_deployment",
]

#: Keys of a deployment in mldeploy.yaml that `online_deployment` replaces (whether or not the file sets them).
ONLINE_DEPLOYMENT_REPLACES = (
    "models", "source_directory", "entry_script", "environment", "resources", "auth",
    "scoring_timeout_ms", "max_concurrent_requests", "health_timeout_s", "instance_count", "instance_type",
    "traffic_percent",
)

#: Curated environments we know the contents of: the serving-relevant packages of Azure's image
#: (azureml-assets: assets/training/general/environments/NAME/context/conda_dependencies.yaml).
#: Azure's own server packages (azureml-defaults, azureml-inference-server-http) are left out:
#: our scoring server stands in for them. `python` is the version Azure's image has.
CURATED_ENVIRONMENTS: Dict[str, Dict[str, Any]] = {
    "sklearn-1.5": {
        "python": "3.10",
        "pip": ["scikit-learn~=1.5.0", "joblib~=1.2.0", "pandas~=1.5.3", "scipy~=1.10.0", "numpy~=1.22.0",
                "inference-schema[numpy-support]"],
        "source": "https://github.com/Azure/azureml-assets/blob/main/assets/training/general/environments/sklearn-1.5/context/conda_dependencies.yaml",
    },
}

_CLOUD_ONLY = {
    "app_insights_enabled": "Application Insights logging",
    "data_collector": "collecting inputs and outputs to blob storage",
    "egress_public_network_access": "outbound network isolation",
    "private_network_connection": "private network isolation",
    "model_mount_path": "where Azure mounts the model (the script finds it through AZUREML_MODEL_DIR here)",
}


class EndpointFileError(Exception):
    """The endpoint file beside a deployment failed validation: `path` and the pydantic `error`."""

    def __init__(self, path: Path, error: Exception) -> None:
        super().__init__(str(error))
        self.path = path
        self.error = error


@dataclass
class Translation:
    """What a v2 deployment file stands for: mldeploy keys, notices, and the names it came with."""

    keys: Dict[str, Any]
    name: str
    endpoint_name: str
    endpoint_file: Optional[Path] = None
    notices: List[str] = field(default_factory=list)
    paths: List["tuple[str, str, Path]"] = field(default_factory=list)
    """(key, as written, absolute) of every local path the file names, for the project's path checks."""


# ---- translation ---------------------------------------------------------------------------------

def translate_online_deployment(path: Path, shown: str, *, registry_dir: Optional[Path] = None) -> Translation:
    """The mldeploy deployment keys equivalent to the v2 deployment file at `path`.

    Raises `pydantic.ValidationError` for schema problems (formatted by the caller with `shown`)
    and `ConfigError` for what is wrong after that (a missing path, an unknown VM size, ...).
    """
    raw = read_yaml(path, shown)
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: expected a v2 online deployment mapping (name, endpoint_name, model, code_configuration, ...)")
    data = OnlineDeploymentFile.model_validate(raw)
    folder = path.parent
    notices: List[str] = []
    keys: Dict[str, Any] = {}

    if data.code_configuration is None:
        raise ConfigError(f"{shown}: code_configuration: required here (code and scoring_script); a deployment without a scoring script is not served by mldeploy")
    code = data.code_configuration
    source = existing_path(Path(os.path.normpath(folder / (code.code or "."))), shown, "code_configuration.code", code.code or ".", "dir")
    entry = (source / code.scoring_script).resolve()
    if not entry.is_file():
        raise ConfigError(f"{shown}: code_configuration.scoring_script: {code.scoring_script} does not exist in {code.code or '.'} (looked for {entry})")
    keys["source_directory"] = str(source)
    keys["entry_script"] = code.scoring_script

    keys["models"] = _models(data, folder, shown, path, registry_dir)
    environment, base_image = _environment(data.environment, folder, shown, notices)
    variables = lift_service_variables(data.environment_variables, keys)
    if variables:
        environment["variables"] = variables
    keys["environment"] = environment
    if base_image:
        keys["base_image"] = base_image

    resources = _resources(data, shown)
    if resources:
        keys["resources"] = resources
    keys["instance_count"] = data.instance_count
    if data.instance_type:
        size = azure_vm_sizes.lookup(data.instance_type)
        keys["instance_type"] = size.name if size is not None else data.instance_type
    if data.instance_count > 1:
        notices.append(f"instance_count {data.instance_count}: one instance runs here; its limits are one instance's")
    settings = data.request_settings
    keys.setdefault("scoring_timeout_ms", settings.request_timeout_ms)
    keys["max_concurrent_requests"] = settings.max_concurrent_requests_per_instance
    if settings.max_queue_wait_ms is not None:
        notices.append("request_settings.max_queue_wait_ms: deprecated by Azure and not applied here")
    keys["health_timeout_s"] = _startup_window(data.liveness_probe, data.readiness_probe)
    if data.scale_settings is not None and data.scale_settings.type.lower() != "default":
        notices.append(f"scale_settings ({data.scale_settings.type}): autoscaling only happens in the cloud; one instance runs here")
    for key, what in _CLOUD_ONLY.items():
        if getattr(data, key) is not None:
            notices.append(f"{key}: only matters in the cloud ({what}); ignored here")

    endpoint_file, endpoint = find_endpoint(folder, data.endpoint_name)
    if endpoint is None:
        notices.append(f"no endpoint file with name: {data.endpoint_name} beside it; key auth, Azure's default")
        keys["auth"] = {"enabled": True}
    else:
        if endpoint.auth_mode == "aad_token":
            raise ConfigError(f"{shown_path(endpoint_file)}: auth_mode: aad_token is for batch endpoints; an online endpoint takes key or aml_token")
        # aml_token is a bearer token as well: locally the service checks it like a key.
        keys["auth"] = {"enabled": True}
        if endpoint.traffic:
            keys["traffic_percent"] = int(endpoint.traffic.get(data.name, 0))
    paths = [("code_configuration.code", code.code or ".", source)]
    if data.model is not None and data.model.path and keys["models"] and keys["models"][0].get("path"):
        paths.append(("model.path", data.model.path, Path(keys["models"][0]["path"])))
    if environment.get("conda_file") and data.environment is not None and isinstance(data.environment.conda_file, str):
        paths.append(("environment.conda_file", data.environment.conda_file, Path(environment["conda_file"])))
    return Translation(keys=keys, name=data.name, endpoint_name=data.endpoint_name, endpoint_file=endpoint_file,
                       notices=notices, paths=paths)


def find_endpoint(folder: Path, endpoint_name: str) -> "tuple[Optional[Path], Optional[OnlineEndpointFile]]":
    """The endpoint file beside a deployment whose `name` is `endpoint_name` (`endpoint.yml` first), or (None, None)."""
    candidates = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".yml", ".yaml") and p.is_file())
    candidates.sort(key=lambda p: 0 if p.stem.lower() == "endpoint" else 1)
    for candidate in candidates:
        try:
            raw = yaml.safe_load(candidate.read_text(encoding="utf-8"))
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            continue
        if is_endpoint_data(raw) and str(raw.get("name")) == endpoint_name:
            try:
                return candidate, OnlineEndpointFile.model_validate(raw)
            except ValidationError as exc:
                raise EndpointFileError(candidate, exc) from None
    return None, None


def _models(data: OnlineDeploymentFile, folder: Path, shown: str, path: Path, registry_dir: Optional[Path]) -> List[Dict[str, Any]]:
    model = data.model
    if model is None:
        return []
    if model.reference is not None:
        name, version = _parse_reference(model.reference, "model", shown)
        _check_registered(name, version, registry_dir, shown)
        return [{"name": name, "version": version}]
    if not model.path:
        if model.name:
            version = int(model.version) if model.version is not None and str(model.version).isdigit() else None
            _check_registered(model.name, version, registry_dir, shown)
            return [{"name": model.name, "version": version}]
        raise ConfigError(f"{shown}: model: give a path (a file or folder) or azureml:NAME:VERSION")
    if re.match(r"^[a-z]+://", model.path) or model.path.startswith("azureml:"):
        raise ConfigError(f"{shown}: model.path: {model.path} is in the cloud; give a local path or download it first")
    full = existing_path(Path(os.path.normpath(folder / model.path)), shown, "model.path", model.path, "any")
    spec: Dict[str, Any] = {"path": str(full)}
    # An anonymous model is named after its deployment, so blue's and green's `model/` folders
    # do not take turns as versions of one name.
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", full.name.split(".")[0]) or "model"
    spec["name"] = model.name or f"{deployment_key(path, data.name)}-{stem}"
    if model.version is not None and model.name:
        if not str(model.version).isdigit():
            raise ConfigError(f"{shown}: model.version: {model.version!r}: the local registry numbers versions 1, 2, ...")
        spec["version"] = int(model.version)
    for key in ("tags", "properties"):
        value = getattr(model, key)
        if value:
            spec[key] = {str(k): str(v) for k, v in value.items()}
    if model.description:
        spec["description"] = model.description
    return [spec]


def _parse_reference(ref: str, kind: str, shown: str) -> "tuple[str, Optional[int]]":
    """`azureml:NAME:VERSION` or `azureml:NAME@latest` -> (NAME, VERSION or None for latest)."""
    match = re.fullmatch(r"azureml:([A-Za-z0-9][A-Za-z0-9._-]*)(?::(\d+)|@latest)?", ref.strip())
    if match is None:
        if ref.startswith("azureml://registries/"):
            raise ConfigError(f"{shown}: {kind}: {ref} is in an Azure registry; download it and give its local path")
        raise ConfigError(f"{shown}: {kind}: {ref!r} is not azureml:NAME:VERSION, azureml:NAME@latest or a local {kind}")
    return match.group(1), int(match.group(2)) if match.group(2) else None


def _check_registered(name: str, version: Optional[int], registry_dir: Optional[Path], shown: str) -> None:
    if registry_dir is None:
        return
    try:
        Registry(registry_dir).get(name, version)
    except RegistryError:
        wanted = f"{name}:{version}" if version is not None else f"{name}@latest"
        version_flag = f" --version {version}" if version is not None else ""
        raise ConfigError(
            f"{shown}: model: azureml:{wanted} is not in the local registry {registry_dir}; "
            f"register it with `mldeploy models --registry {registry_dir} register --name {name}{version_flag} --path PATH`"
        ) from None


def _environment(env: Optional[EnvironmentAsset], folder: Path, shown: str, notices: List[str]) -> "tuple[Dict[str, Any], Optional[str]]":
    """(environment keys, base image) of a v2 `environment:` (inline, a curated one, or `azureml:NAME:VERSION`)."""
    if env is None:
        raise ConfigError(f"{shown}: environment: required here (conda_file and/or image, or azureml:NAME:VERSION)")
    key = "environment"
    if env.reference is not None:
        curated = re.fullmatch(r"azureml://registries/azureml/environments/([^/]+)/(?:labels|versions)/[^/]+", env.reference.strip())
        if curated:
            known = CURATED_ENVIRONMENTS.get(curated.group(1))
            if known is None:
                raise ConfigError(
                    f"{shown}: environment: curated environment {curated.group(1)!r} is not one mldeploy knows "
                    f"({', '.join(sorted(CURATED_ENVIRONMENTS))}); give conda_file and image instead"
                )
            notices.append(f"environment: curated {curated.group(1)} stands for its packages (docs/azureml-v2.md), Python {known['python']} in Azure's image")
            return {"pip": list(known["pip"])}, None
        name, version = _parse_reference(env.reference, "environment", shown)
        env_file, env = _environment_file(folder, name, version, shown)
        folder = env_file.parent
        key = f"environment ({shown_path(env_file)})"
    if env.build is not None:
        raise ConfigError(f"{shown}: {key}.build: a Docker build context is not built by mldeploy; give conda_file and image")
    environment: Dict[str, Any] = {}
    if isinstance(env.conda_file, dict):
        raise ConfigError(f"{shown}: {key}.conda_file: give a path to the conda file, not the environment inline")
    if env.conda_file:
        environment["conda_file"] = str(existing_path(Path(os.path.normpath(folder / env.conda_file)), shown, f"{key}.conda_file", env.conda_file, "file"))
    if env.inference_config is not None:
        notices.append(f"{key}.inference_config: routes of a custom container are not used; the scoring server serves /score")
    if not env.conda_file and not env.image:
        raise ConfigError(f"{shown}: {key}: give conda_file and/or image")
    return environment, env.image


def _environment_file(folder: Path, name: str, version: Optional[int], shown: str) -> "tuple[Path, EnvironmentAsset]":
    """A local environment YAML beside the deployment (or in an `environment*/` folder next to it) with this name and version."""
    places = [folder, *sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("environment"))]
    for place in places:
        for candidate in sorted(place.iterdir()):
            if candidate.suffix.lower() not in (".yml", ".yaml") or not candidate.is_file():
                continue
            try:
                raw = yaml.safe_load(candidate.read_text(encoding="utf-8"))
            except (yaml.YAMLError, OSError, UnicodeDecodeError):
                continue
            if not isinstance(raw, dict) or is_deployment_data(raw) or is_endpoint_data(raw):
                continue
            if str(raw.get("name")) == name and (version is None or str(raw.get("version")) == str(version)):
                if not (raw.get("conda_file") or raw.get("image") or raw.get("build")):
                    continue
                return candidate, EnvironmentAsset.model_validate(raw)
    wanted = f"{name}:{version}" if version is not None else f"{name}@latest"
    raise ConfigError(
        f"{shown}: environment: azureml:{wanted} has no local environment file; write one beside it "
        f"(name: {name}, version: {version if version is not None else 1}, conda_file, image), as `az ml environment create -f` takes"
    )


def _resources(data: OnlineDeploymentFile, shown: str) -> Dict[str, float]:
    """CPU and memory limits: Kubernetes `resources` (limits, else requests) first, else the VM size's."""
    if data.resources is not None:
        chosen = data.resources.limits or data.resources.requests
        if chosen is not None:
            out: Dict[str, float] = {}
            if chosen.cpu is not None:
                out["cpu"] = parse_cpu(chosen.cpu, shown)
            if chosen.memory is not None:
                out["memory_gb"] = parse_memory_gb(chosen.memory, shown)
            return out
    if data.instance_type:
        size = azure_vm_sizes.lookup(data.instance_type)
        kubernetes = (data.type or "").lower() == "kubernetes" or "kubernetes" in (data.schema_ or "").lower()
        if size is None and kubernetes:
            raise ConfigError(
                f"{shown}: instance_type: {data.instance_type} is an instance type of your Kubernetes cluster, "
                "unknown here; give resources.limits (cpu, memory) for the limits the service runs under"
            )
        if size is None:
            raise ConfigError(
                f"{shown}: instance_type: {data.instance_type} is not a size of the managed online endpoints SKU list"
                f"{azure_vm_sizes.suggestion(data.instance_type)} (docs/azureml-v2.md lists them)"
            )
        return {"cpu": float(size.vcpus), "memory_gb": size.memory_gib}
    return {}


def parse_cpu(value: Union[str, float], shown: str) -> float:
    """A Kubernetes CPU quantity (`500m`, `1`, `0.5`) in cores."""
    text = str(value).strip()
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ConfigError(f"{shown}: resources: cpu {value!r} is not a CPU quantity like 500m or 1") from None
    if cores <= 0:
        raise ConfigError(f"{shown}: resources: cpu must be more than 0, got {value!r}")
    return cores


_MEMORY_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_memory_gb(value: str, shown: str) -> float:
    """A Kubernetes memory quantity (`512Mi`, `1Gi`, `1G`) in GiB, as mldeploy's memory_gb counts."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]i?|[kmgt]i?)?\s*", str(value))
    if match is None:
        raise ConfigError(f"{shown}: resources: memory {value!r} is not a memory quantity like 512Mi or 1Gi")
    amount = float(match.group(1)) * _MEMORY_UNITS[(match.group(2) or "").lower()]
    if amount <= 0:
        raise ConfigError(f"{shown}: resources: memory must be more than 0, got {value!r}")
    return round(amount / 2**30, 3)


def _startup_window(liveness: Optional[Probe], readiness: Optional[Probe]) -> float:
    """Seconds a service may take to answer its first health probe before Azure gives up on it.

    Azure restarts a container whose liveness probe failed `failure_threshold` times in a row,
    starting `initial_delay` s after start, every `period` s: initial_delay + period x failure_threshold
    (310 s with the defaults). A readiness probe that gives up sooner bounds it too.
    """
    windows = [p.initial_delay + p.period * p.failure_threshold for p in (liveness or Probe(), readiness or Probe())]
    return float(min(windows))
