"""A deployment's keys that name Azure ML files, replaced by the inline keys the files stand for.

`inference_config` and `deployment_config` (v1 JSON, `core/azure_config.py`) and `online_deployment`
(a v2 YAML, `core/azure_v2.py`) each replace a fixed set of keys. Setting one of those beside the
file is an error, as is a key the file sets that the deployment sets too; a key that only came from
`defaults:` gives way. Errors name the file they were found in.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Set

from pydantic import ValidationError

from pytest_mldeploy.core import azure_config, azure_v2
from pytest_mldeploy.core.azure_v2_schema import OnlineDeploymentFile, OnlineEndpointFile
from pytest_mldeploy.core.project_paths import CONFIG_FILENAME, outside_problem
from pytest_mldeploy.core.strict_model import format_errors, show_value
from pytest_mldeploy.core.text_files import shown_path
from pytest_mldeploy.errors import ConfigError

_V1_FILES = (
    ("inference_config", azure_config.INFERENCE_CONFIG_REPLACES, azure_config.translate_inference_config,
     azure_config.InferenceConfigFile),
    ("deployment_config", azure_config.DEPLOYMENT_CONFIG_REPLACES, azure_config.translate_deployment_config,
     azure_config.DeploymentConfigFile),
)


def apply_azure_files(data: Dict[str, Any], context: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """`data` (one deployment's keys) with `online_deployment`, `inference_config` and `deployment_config`
    replaced by what their files say; `context` is the validation context `load_project` gives."""
    ctx = context or {}
    root = Path(ctx.get("root") or os.getcwd())
    where = ctx.get("where") or f"deployments.{data.get('name', '?')}"
    shown = ctx.get("shown") or CONFIG_FILENAME
    from_defaults: Set[str] = set(ctx.get("from_defaults") or ())
    data = dict(data)
    if data.get("online_deployment") is not None:
        data = _apply_online_deployment(data, ctx, root, where, shown, from_defaults)
    for key, replaces, translate, model in _V1_FILES:
        if data.get(key) is None:
            continue
        path = _replacing_file(data, key, replaces, "a JSON file", root, ctx, where, shown, from_defaults)
        json_shown = shown_path(path)
        try:
            translated = translate(path, json_shown)
        except ValidationError as exc:
            raise ConfigError(format_errors(exc, json_shown, model)) from None
        _put_in_place(data, key, path, translated, replaces, from_defaults, shown, where)
        if isinstance(translated.get("environment"), dict) and "conda" in translated["environment"] and isinstance(context, dict):
            context["conda_origin"] = f"{json_shown}: environment.python.condaDependencies"
    return data


def _put_in_place(
    data: Dict[str, Any], key: str, path: Path, translated: Dict[str, Any], replaces: Sequence[str],
    from_defaults: Set[str], shown: str, where: str,
) -> None:
    """Put the keys the file at `path` (named by `key`) stands for in place of the keys it replaces;
    a key the file sets that the deployment sets too (not from `defaults:`) is an error."""
    for name in translated:
        if name in data and name not in from_defaults and name not in replaces:
            raise ConfigError(f"{shown}: {where}.{name}: also set by {key} {data[key]}; keep one")
    for name in replaces:
        data.pop(name, None)
    data.update(translated)
    data[key] = str(path)


def _replacing_file(
    data: Dict[str, Any], key: str, replaces: Sequence[str], what: str, root: Path, ctx: Dict[str, Any],
    where: str, shown: str, from_defaults: Set[str], check_outside: bool = True,
) -> Path:
    """The existing file named by `key` (an Azure config that stands for the keys `replaces`), checked
    for a text path, keys set beside it, existence and lying inside the project."""
    raw = data[key]
    if not isinstance(raw, str):
        raise ConfigError(f"{shown}: {where}.{key}: expected a path to {what}, got {show_value(raw)}")
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
    key = "online_deployment"
    replaces = azure_v2.ONLINE_DEPLOYMENT_REPLACES
    path = _replacing_file(data, key, replaces, "a v2 deployment YAML file", root, ctx, where, shown, from_defaults,
                           check_outside="root" in ctx)
    file_shown = shown_path(path)
    try:
        translation = azure_v2.translate_online_deployment(path, file_shown, registry_dir=ctx.get("registry"))
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, file_shown, OnlineDeploymentFile)) from None
    except azure_v2.EndpointFileError as exc:
        raise ConfigError(format_errors(exc.error, shown_path(exc.path), OnlineEndpointFile)) from None  # type: ignore[arg-type]
    if "root" in ctx:
        for v2_key, written, full in translation.paths:
            problem = outside_problem(written, full, root, ctx.get("allowed_outside") or ())
            if problem:
                raise ConfigError(f"{file_shown}: {v2_key}: {problem}")
    translated = dict(translation.keys)
    if data.get("base_image") is not None:  # mldeploy.yaml's base image wins over the v2 environment's image
        translated.pop("base_image", None)
    _put_in_place(data, key, path, translated, replaces, from_defaults, shown, where)
    if isinstance(ctx.get("notices"), dict) and data.get("name"):
        ctx["notices"].setdefault(str(data["name"]), []).extend(translation.notices)
    return data
