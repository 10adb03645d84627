"""The files `pytest --mldeploy` collects: which they are, and the line of a deployment's key in them.

Plain functions (no pytest) so the plugin's hooks stay wiring: `mldeploy.yaml` files, and Azure ML
v2 deployment YAML files that no `mldeploy.yaml` above them names with `online_deployment`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

CONFIG_NAMES = ("mldeploy.yaml", "mldeploy.yml")


def unclaimed_online_deployment(file_path: Path, claimed: dict[str, set[Path]]) -> bool:
    """An Azure ML v2 deployment YAML that no `mldeploy.yaml` above it names with `online_deployment`.

    `claimed` caches, per `mldeploy.yaml`, the deployment files it names (one read per run).
    """
    if file_path.suffix.lower() not in (".yml", ".yaml"):
        return False
    from pytest_mldeploy.core import azure_v2_files as azure_v2

    if not azure_v2.is_deployment_file(file_path):
        return False
    real = file_path.resolve()
    for folder in real.parents:
        for name in CONFIG_NAMES:
            candidate = folder / name
            if not candidate.is_file():
                continue
            key = str(candidate)
            if key not in claimed:
                import yaml

                try:
                    data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
                except (yaml.YAMLError, OSError, UnicodeDecodeError):
                    data = None
                claimed[key] = {p.resolve() for p in azure_v2.referenced_deployment_files(candidate, data)}
            if real in claimed[key]:
                return False
    return True


def deployment_line(path: Path, name: str) -> int:
    """The 0-based line of `NAME:` in the config, where warnings about the deployment point (0 if not found)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    keys = (f"{name}:", f'"{name}":', f"'{name}':")
    if path.name not in CONFIG_NAMES:  # an Azure ML v2 deployment file: point at its `name:`
        return next((n for n, text in enumerate(lines) if text.startswith("name:")), 0)
    indent: Optional[int] = None
    inside = False
    for number, text in enumerate(lines):
        content = text.split("#")[0].rstrip()
        if not content:
            continue
        depth = len(text) - len(text.lstrip())
        if depth == 0:
            inside = content == "deployments:"
            continue
        if inside:
            indent = depth if indent is None else indent
            if depth == indent and content.strip() in keys:
                return number
    return 0
