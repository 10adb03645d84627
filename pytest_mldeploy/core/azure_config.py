"""Translate Azure ML CLI v1 files (`inferenceconfig.json`, `deploymentconfig.json`) into mldeploy.yaml keys.

A deployment in `mldeploy.yaml` may name these files instead of writing the keys inline, so a project
that already deploys with `az ml model deploy --ic ... --dc ...` needs no second copy of its settings.
Each file is validated against a pydantic model of the documented schema (unknown keys are errors,
documented keys this tool has no use for are accepted and ignored), then turned into the plain dict of
inline keys it replaces. Validation errors propagate as `pydantic.ValidationError` so that
`core/azure_files.py` formats them with the file's name; problems found after validation (a missing file,
a bad file) raise `errors.ConfigError` here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from pydantic import BaseModel, ConfigDict

from pytest_mldeploy.core.text_files import read_json
from pytest_mldeploy.errors import ConfigError
from pytest_mldeploy.server import contract

# Keys of a deployment in mldeploy.yaml that each Azure file replaces (always, whether or not the file sets them).
INFERENCE_CONFIG_REPLACES = ("entry_script", "source_directory", "environment")
DEPLOYMENT_CONFIG_REPLACES = ("resources", "auth", "port")

# Service settings Azure users put in environmentVariables; mldeploy has keys for them.
_ENV_TO_KEY = {contract.WORKER_COUNT_VAR: "workers", contract.SCORING_TIMEOUT_MS_VAR: "scoring_timeout_ms",
               contract.CORS_ORIGINS_VAR: "cors_origins"}


class _AzureModel(BaseModel):
    """Azure CLI files: unknown keys are errors so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


class _CondaDependencies(_AzureModel):
    name: Optional[str] = None
    channels: List[str] = []
    dependencies: List[Union[str, Dict[str, List[str]]]] = []


class _PythonSection(_AzureModel):
    condaDependencies: Optional[_CondaDependencies] = None
    condaDependenciesFile: Optional[str] = None
    userManagedDependencies: Optional[bool] = None
    interpreterPath: Optional[str] = None
    baseCondaEnvironment: Optional[str] = None


class _DockerSection(_AzureModel):
    baseImage: Optional[str] = None
    baseDockerfile: Optional[str] = None
    baseImageRegistry: Optional[Dict[str, Any]] = None
    enabled: Optional[bool] = None
    arguments: Optional[List[str]] = None
    sharedVolumes: Optional[bool] = None
    shmSize: Optional[str] = None
    buildContext: Optional[Any] = None
    platform: Optional[Any] = None


class _EnvironmentSection(_AzureModel):
    name: Optional[str] = None
    version: Optional[str] = None
    python: Optional[_PythonSection] = None
    docker: Optional[_DockerSection] = None
    environmentVariables: Dict[str, Union[str, int, float, bool]] = {}
    inferencingStackVersion: Optional[str] = None
    spark: Optional[Any] = None
    r: Optional[Any] = None
    databricks: Optional[Any] = None
    assetId: Optional[str] = None


class InferenceConfigFile(_AzureModel):
    """`inferenceconfig.json` as `az ml model deploy --ic` reads it (both the old flat and the environment form)."""

    entryScript: str
    sourceDirectory: Optional[str] = None
    environment: Optional[_EnvironmentSection] = None
    # The old flat form.
    runtime: Optional[str] = None
    condaFile: Optional[str] = None
    baseImage: Optional[str] = None
    baseImageRegistry: Optional[Any] = None
    extraDockerfileSteps: Optional[str] = None
    enableGpu: Optional[bool] = None
    cudaVersion: Optional[str] = None
    description: Optional[str] = None
    schemaFile: Optional[str] = None
    dependencies: Optional[List[str]] = None


class _ContainerResources(_AzureModel):
    cpu: Optional[float] = None
    memoryInGB: Optional[float] = None
    cpuLimit: Optional[float] = None
    memoryInGBLimit: Optional[float] = None
    gpu: Optional[int] = None


class DeploymentConfigFile(_AzureModel):
    """`deploymentconfig.json` for ACI, AKS and LocalWebservice (`az ml model deploy --dc`)."""

    computeType: Optional[str] = None
    containerResourceRequirements: Optional[_ContainerResources] = None
    authEnabled: Optional[bool] = None
    tokenAuthEnabled: Optional[bool] = None
    primaryKey: Optional[str] = None
    secondaryKey: Optional[str] = None
    port: Optional[int] = None
    scoringTimeoutMs: Optional[int] = None
    # Documented keys with no local meaning: accepted, ignored.
    location: Optional[str] = None
    sslEnabled: Optional[bool] = None
    sslCertificate: Optional[str] = None
    sslKey: Optional[str] = None
    cname: Optional[str] = None
    dnsNameLabel: Optional[str] = None
    appInsightsEnabled: Optional[bool] = None
    autoScaler: Optional[Dict[str, Any]] = None
    dataCollection: Optional[Dict[str, Any]] = None
    numReplicas: Optional[int] = None
    maxConcurrentRequestsPerContainer: Optional[int] = None
    maxQueueWaitMs: Optional[int] = None
    namespace: Optional[str] = None
    computeTargetName: Optional[str] = None
    livenessProbeRequirements: Optional[Dict[str, Any]] = None
    gpuCores: Optional[int] = None
    vnetName: Optional[str] = None
    subnetName: Optional[str] = None
    tags: Optional[Dict[str, Any]] = None
    properties: Optional[Dict[str, Any]] = None
    description: Optional[str] = None


def existing_path(path: Path, shown: str, key: str, raw: str, kind: str = "file") -> Path:
    """`path` when it exists and is of `kind` (file, dir, or any); else the one-line error naming `key` and `raw`."""
    if not path.exists():
        raise ConfigError(f"{shown}: {key}: {raw} does not exist (looked for {path})")
    if kind == "file" and not path.is_file():
        raise ConfigError(f"{shown}: {key}: {raw} is not a file")
    if kind == "dir" and not path.is_dir():
        raise ConfigError(f"{shown}: {key}: {raw} is not a folder")
    return path


def lift_service_variables(variables: Dict[str, Any], keys: Dict[str, Any]) -> Dict[str, str]:
    """Move WORKER_COUNT / SCORING_TIMEOUT_MS / CORS_ORIGINS out of the variables into mldeploy keys."""
    rest: Dict[str, str] = {}
    for name, value in variables.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        key = _ENV_TO_KEY.get(name)
        if key == "cors_origins":
            keys[key] = [origin.strip() for origin in text.split(",") if origin.strip()]
        elif key is not None:
            keys[key] = text
        else:
            rest[str(name)] = text
    return rest


def translate_inference_config(path: Path, shown: str) -> Dict[str, Any]:
    """Inline deployment keys equivalent to an `inferenceconfig.json`.

    Inline `condaDependencies` become `environment.conda`; `environment.docker.baseImage` becomes
    `base_image` as written (an Azure curated image is mapped to ours when the image is built).

    Paths come back absolute: `sourceDirectory` relative to the JSON file's folder (default: that
    folder), `entryScript` and conda files relative to the source directory, as Azure ML resolves them.
    Besides the replaced keys the result may hold `base_image`, `workers`, `scoring_timeout_ms` and
    `cors_origins` (lifted from environment variables).
    """
    data = InferenceConfigFile.model_validate(read_json(path, shown))
    folder = path.parent
    source = folder
    if data.sourceDirectory:
        source = existing_path((folder / Path(data.sourceDirectory).expanduser()).resolve(), shown, "sourceDirectory", data.sourceDirectory, "dir")
    entry = existing_path((source / data.entryScript).resolve(), shown, "entryScript", data.entryScript)
    if not entry.is_relative_to(source):
        raise ConfigError(f"{shown}: entryScript: {data.entryScript} is outside sourceDirectory {source}; move it into the source directory")
    keys: Dict[str, Any] = {"source_directory": str(source), "entry_script": entry.relative_to(source).as_posix()}
    environment: Dict[str, Any] = {}
    base_image = data.baseImage
    conda_file: Optional[str] = data.condaFile
    conda_key = "condaFile"
    env = data.environment
    if env is not None:
        if env.python is not None:
            if env.python.condaDependencies is not None and env.python.condaDependenciesFile:
                raise ConfigError(f"{shown}: environment.python: give condaDependencies or condaDependenciesFile, not both")
            if env.python.condaDependencies is not None:
                # Mapped to pip requirements (conda packages and the pip section) by core/conda.py.
                environment["conda"] = env.python.condaDependencies.model_dump(exclude_none=True)
            if env.python.condaDependenciesFile:
                conda_file, conda_key = env.python.condaDependenciesFile, "environment.python.condaDependenciesFile"
        if env.docker is not None and env.docker.baseImage:
            base_image = env.docker.baseImage
        if env.environmentVariables:
            variables = lift_service_variables(env.environmentVariables, keys)
            if variables:
                environment["variables"] = variables
    if conda_file:
        candidates = [(source / conda_file).resolve(), (folder / conda_file).resolve()]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ConfigError(f"{shown}: {conda_key}: {conda_file} does not exist (looked in {source} and {folder})")
        environment["conda_file"] = str(found)
    if environment:
        keys["environment"] = environment
    if base_image:
        keys["base_image"] = base_image
    return keys


def translate_deployment_config(path: Path, shown: str) -> Dict[str, Any]:
    """Inline deployment keys equivalent to a `deploymentconfig.json` (ACI, AKS or local)."""
    data = DeploymentConfigFile.model_validate(read_json(path, shown))
    keys: Dict[str, Any] = {}
    res = data.containerResourceRequirements
    if res is not None:
        resources = {k: v for k, v in (("cpu", res.cpu), ("memory_gb", res.memoryInGB)) if v is not None}
        if resources:
            keys["resources"] = resources
    if data.authEnabled is not None or data.primaryKey or data.secondaryKey:
        auth: Dict[str, Any] = {"enabled": bool(data.authEnabled)}
        supplied = [k for k in (data.primaryKey, data.secondaryKey) if k]
        if supplied:
            auth["keys"] = supplied
        keys["auth"] = auth
    if data.port is not None:
        keys["port"] = data.port
    if data.scoringTimeoutMs is not None:
        keys["scoring_timeout_ms"] = data.scoringTimeoutMs
    return keys
