"""Write a deployment (from mldeploy.yaml, or Azure v1 files) as Azure ML v2 online deployment YAML.

`mldeploy export azureml-v2 DEPLOYMENT --out DIR` writes `DIR/endpoint.yml`, `DIR/DEPLOYMENT.yml`
and `DIR/DEPLOYMENT-conda.yml`: what `az ml online-endpoint create -f` and `az ml online-deployment
create -f` take, with `code` and `model` paths relative to DIR. `pytest --mldeploy` in DIR reads
them back (core/azure_v2.py), so the exported files are gated before they ship.

`instance_type` is the smallest size of the managed online endpoints SKU list that holds the
profile's recommendation when a profile report is at hand, else the deployment's `resources`;
the reason is written beside it as a comment.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from pytest_mldeploy.core import azure_v2, azure_vm_sizes
from pytest_mldeploy.core.azure_v2_schema import MANAGED_DEPLOYMENT_SCHEMA, MANAGED_ENDPOINT_SCHEMA
from pytest_mldeploy.core.text_files import shown_path
from pytest_mldeploy.errors import ConfigError
from pytest_mldeploy.server import contract

#: The image Azure's v2 samples build conda environments on (a curated base; mapped to ours locally).
DEFAULT_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
DEFAULT_PYTHON = "3.11"


@dataclass
class Exported:
    """The files written and why the instance type is what it is."""

    endpoint: Path
    deployment: Path
    conda_file: Path
    instance_type: str
    reason: str


def endpoint_name(deployment_name: str) -> str:
    """An Azure endpoint name from a deployment name: 3-32 letters, digits and '-', starting with a letter."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", deployment_name).strip("-") or "mldeploy"
    if not name[0].isalpha():
        name = f"e-{name}"
    name = f"{name}-endpoint" if len(name) <= 23 else name
    return name[:32].rstrip("-").ljust(3, "x")


def v2_deployment_name(deployment_name: str) -> str:
    """An Azure deployment name: letters, digits and '-', starting with a letter, at most 32 characters."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", deployment_name).strip("-") or "deployment"
    if not name[0].isalpha():
        name = f"d-{name}"
    return name[:32].rstrip("-").ljust(3, "x")


def read_recommendation(path: Path) -> Tuple[float, float]:
    """(cpu, memory_gb) a profile report recommends (`requestedCpu`, `requestedMemoryInGb` of profile.json)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return float(data["requestedCpu"]), float(data["requestedMemoryInGb"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a profile report with requestedCpu and requestedMemoryInGb ({exc})") from None


def choose_instance_type(deployment: Any, profile_report: Optional[Path]) -> Tuple[str, str]:
    """(instance type, reason): the smallest listed size holding the profile's recommendation, else `resources`."""
    if profile_report is not None:
        cpu, memory = read_recommendation(profile_report)
        source = f"the profile's recommendation ({cpu:g} cores, {memory:g} GB) in {profile_report}"
    else:
        cpu, memory = float(deployment.resources.cpu), float(deployment.resources.memory_gb)
        source = f"resources ({cpu:g} cores, {memory:g} GB)"
    size = azure_vm_sizes.smallest_holding(cpu, memory)
    if size is None:
        raise ConfigError(f"deployment {deployment.name}: no CPU size of the managed online endpoints SKU list holds {source}")
    return size.name, f"{size.name} ({size.vcpus} vCPUs, {size.memory_gib:g} GiB): the smallest listed size holding {source}"


def conda_environment(deployment: Any) -> Dict[str, Any]:
    """The deployment's environment as a conda file: its conda file as written, else python and its pip lines."""
    spec = deployment.environment
    if spec.conda_file is not None:
        return azure_v2.read_yaml(Path(spec.conda_file), str(spec.conda_file))
    python = spec.python_version() or DEFAULT_PYTHON
    lines = spec.requirements()
    absolute = [line for line in lines if re.search(r"(^|\s)(/|\.\.?/)", line)]
    if absolute:
        raise ConfigError(
            f"deployment {deployment.name}: environment: {absolute[0]!r} names a local file; Azure builds the "
            "environment from the conda file alone: publish it to an index or vendor it into the code folder"
        )
    return {
        "name": f"{v2_deployment_name(deployment.name)}-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={python}", "pip", {"pip": list(lines)}],
    }


def export_azureml_v2(project: Any, deployment: Any, out_dir: Path, profile_report: Optional[Path] = None) -> Exported:
    """Write endpoint.yml, DEPLOYMENT.yml and DEPLOYMENT-conda.yml for `deployment` into `out_dir`."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    models = list(deployment.models)
    if len(models) > 1:
        raise ConfigError(
            f"deployment {deployment.name}: {len(models)} models; an Azure ML v2 deployment takes one: put them "
            "in one folder and register that folder as the model (AZUREML_MODEL_DIR then holds the folder)"
        )
    name = v2_deployment_name(deployment.name)
    endpoint = endpoint_name(deployment.name)
    instance_type, reason = choose_instance_type(deployment, profile_report)

    conda_path = out / f"{name}-conda.yml"
    conda_path.write_text(yaml.safe_dump(conda_environment(deployment), sort_keys=False), encoding="utf-8")

    body: Dict[str, Any] = {
        "$schema": MANAGED_DEPLOYMENT_SCHEMA,
        "name": name,
        "endpoint_name": endpoint,
    }
    if models:
        body["model"] = _model(models[0], out)
    body["code_configuration"] = {
        "code": _relative(Path(deployment.source_directory), out),
        "scoring_script": deployment.entry_script,
    }
    body["environment"] = {"conda_file": conda_path.name, "image": _image(deployment)}
    variables = dict(deployment.environment.variables)
    if deployment.workers != 1:
        variables[contract.WORKER_COUNT_VAR] = str(deployment.workers)
    if deployment.cors_origins:
        variables[contract.CORS_ORIGINS_VAR] = ",".join(deployment.cors_origins)
    if variables:
        body["environment_variables"] = variables
    body["instance_type"] = instance_type
    body["instance_count"] = int(getattr(deployment, "instance_count", 1) or 1)
    settings: Dict[str, Any] = {"request_timeout_ms": int(deployment.scoring_timeout_ms)}
    if getattr(deployment, "max_concurrent_requests", None):
        settings["max_concurrent_requests_per_instance"] = int(deployment.max_concurrent_requests)
    body["request_settings"] = settings
    if float(deployment.health_timeout_s) != 120:
        # Azure restarts a container whose liveness probe fails failure_threshold times after initial_delay.
        body["liveness_probe"] = {"initial_delay": 10, "period": 10,
                                  "failure_threshold": max(1, -(-int(float(deployment.health_timeout_s) - 10) // 10))}

    text = yaml.safe_dump(body, sort_keys=False)
    text = text.replace(f"instance_type: {instance_type}\n", f"# {reason}\ninstance_type: {instance_type}\n")
    header = (f"# Written by `mldeploy export azureml-v2 {deployment.name}` from {shown_path(project.config_path)}.\n"
              f"# Deploy: az ml online-endpoint create -f endpoint.yml && az ml online-deployment create -f {name}.yml\n")
    deployment_path = out / f"{name}.yml"
    deployment_path.write_text(header + text, encoding="utf-8")

    endpoint_body = {
        "$schema": MANAGED_ENDPOINT_SCHEMA,
        "name": endpoint,
        "auth_mode": "key",
        "traffic": {name: 100},
    }
    note = "" if deployment.auth.enabled else "# auth is off in mldeploy.yaml; Azure online endpoints always authenticate: key auth.\n"
    endpoint_path = out / "endpoint.yml"
    endpoint_path.write_text(note + yaml.safe_dump(endpoint_body, sort_keys=False), encoding="utf-8")
    return Exported(endpoint_path, deployment_path, conda_path, instance_type, reason)


def _model(spec: Any, out: Path) -> Any:
    if spec.path is None:
        return f"azureml:{spec.name}:{spec.version}" if spec.version is not None else f"azureml:{spec.name}@latest"
    model: Dict[str, Any] = {"name": spec.name, "path": _relative(Path(spec.path), out)}
    if spec.description:
        model["description"] = spec.description
    tags = dict(spec.tags)
    if spec.framework:
        tags.setdefault("framework", spec.framework)
    if spec.framework_version:
        tags.setdefault("framework_version", spec.framework_version)
    if tags:
        model["tags"] = tags
    return model


def _image(deployment: Any) -> str:
    image = getattr(deployment, "base_image", None) or ""
    return image if image.startswith("mcr.microsoft.com/azureml/") else DEFAULT_IMAGE


def _relative(path: Path, out: Path) -> str:
    rel = os.path.relpath(path, out)
    return rel + "/" if path.is_dir() and not rel.endswith("/") else rel


def written(exported: Exported) -> List[Path]:
    """The files an export wrote, in the order to deploy them."""
    return [exported.endpoint, exported.conda_file, exported.deployment]
