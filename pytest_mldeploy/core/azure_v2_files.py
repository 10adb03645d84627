"""Recognise Azure ML v2 online deployment and endpoint YAML files, and what they stand for before
translation: a deployment's mldeploy name, the folder its paths must stay in, the files an
`mldeploy.yaml` names with `online_deployment`. `azure_v2.py` translates a recognised file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, List, Sequence

import yaml

from pytest_mldeploy.core.azure_v2_schema import DEPLOYMENT_SCHEMAS, ENDPOINT_SCHEMAS
from pytest_mldeploy.errors import ConfigError


def is_deployment_data(data: Any) -> bool:
    """Whether parsed YAML is a v2 online deployment: its `$schema` says so, or it has `endpoint_name` and `code_configuration`."""
    if not isinstance(data, dict):
        return False
    schema = data.get("$schema")
    if isinstance(schema, str) and schema.lower().rstrip("/").endswith(DEPLOYMENT_SCHEMAS):
        return True
    return "endpoint_name" in data and "code_configuration" in data


def is_endpoint_data(data: Any) -> bool:
    """Whether parsed YAML is a v2 online endpoint (its `$schema`, or a `name` with `auth_mode`/`traffic` and no deployment keys)."""
    if not isinstance(data, dict) or is_deployment_data(data):
        return False
    schema = data.get("$schema")
    if isinstance(schema, str):
        return schema.lower().rstrip("/").endswith(ENDPOINT_SCHEMAS)
    return "name" in data and ("auth_mode" in data or "traffic" in data) and "endpoint_name" not in data


def read_yaml(path: Path, shown: str) -> Any:
    """Parse a YAML file, naming the file and line on errors."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{shown}: {where}YAML syntax error: {getattr(exc, 'problem', None) or exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None


def is_deployment_file(path: Path) -> bool:
    """A cheap look at a `.yml`/`.yaml` file: is it a v2 online deployment? (Unreadable files are not.)"""
    if path.suffix.lower() not in (".yml", ".yaml") or not path.is_file():
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return False
    if "endpoint_name" not in head and "OnlineDeployment" not in head:
        return False
    try:
        return is_deployment_data(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return False


def deployment_key(path: Path, name: str) -> str:
    """The mldeploy name of deployment `name` read from `path`: `NAME` when the file is `NAME.yml` or
    `NAME-deployment.yml`, else `FILESTEM.NAME`, so variants of one deployment (Azure's sample has three
    `blue`s) do not collide in images, containers and registries."""
    stem = path.stem
    if stem in (name, f"{name}-deployment", f"{name}_deployment"):
        key = name
    else:
        key = f"{stem}.{name}"
    key = re.sub(r"[^A-Za-z0-9._-]", "-", key)
    return key if re.match(r"[A-Za-z0-9]", key) else f"d{key}"


def project_root(path: Path, data: Any) -> Path:
    """The folder a v2 file's paths must stay inside: the enclosing git work tree, else the common
    folder of the file and the relative paths it names (`../../model-1/model/` lifts it two levels)."""
    folder = path.parent.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    common = folder
    for raw in _relative_paths(data):
        target = Path(os.path.normpath(folder / raw))
        common = Path(os.path.commonpath([common, target]))
    return common


def _relative_paths(data: Any) -> List[str]:
    if not isinstance(data, dict):
        return []
    out: List[str] = []
    model, code, env = data.get("model"), data.get("code_configuration"), data.get("environment")
    if isinstance(model, dict) and isinstance(model.get("path"), str):
        out.append(model["path"])
    if isinstance(code, dict) and isinstance(code.get("code"), str):
        out.append(code["code"])
    if isinstance(env, dict) and isinstance(env.get("conda_file"), str):
        out.append(env["conda_file"])
    return [p for p in out if not os.path.isabs(p) and not re.match(r"^[a-z]+:", p)]


def referenced_deployment_files(config_path: Path, data: Any) -> Sequence[Path]:
    """The v2 files an `mldeploy.yaml` names with `online_deployment` (resolved), for collection to skip them."""
    out: List[Path] = []
    deployments = data.get("deployments") if isinstance(data, dict) else None
    defaults = data.get("defaults") if isinstance(data, dict) else None
    for entry in [*(deployments.values() if isinstance(deployments, dict) else []), defaults]:
        if isinstance(entry, dict) and isinstance(entry.get("online_deployment"), str):
            out.append(Path(os.path.normpath(config_path.parent / entry["online_deployment"])))
    return out
