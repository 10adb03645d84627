"""pytest-mldeploy: gate Azure ML-style model deployments in CI before they roll out.

The names below are the public API. Each is imported from its module on first use (PEP 562), so
`import pytest_mldeploy` stays standard-library-only: the scoring server imports this package
and must not pull in the deploy core, pydantic or requests. (Venvs and images get a stub in its
place that holds only `__version__`: see core/server_copy.py.)
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from pytest_mldeploy._version import __version__

_WHERE = {
    "load_project": "pytest_mldeploy.core.config",
    "Project": "pytest_mldeploy.core.config",
    "Deployment": "pytest_mldeploy.core.config",
    "Registry": "pytest_mldeploy.core.registry",
    "get_target": "pytest_mldeploy.core.targets",
    "Service": "pytest_mldeploy.core.service",
    "ScoringClient": "pytest_mldeploy.client",
    "CheckResult": "pytest_mldeploy.checks.base",
    "Outcome": "pytest_mldeploy.checks.base",
    "profile_deployment": "pytest_mldeploy.checks.profiling",
    "ProfileResult": "pytest_mldeploy.checks.profiling",
    "MldeployError": "pytest_mldeploy.errors",
    "ConfigError": "pytest_mldeploy.errors",
    "RegistryError": "pytest_mldeploy.errors",
    "BuildError": "pytest_mldeploy.errors",
    "ServiceError": "pytest_mldeploy.errors",
}

__all__ = ["__version__", *_WHERE]

if TYPE_CHECKING:
    from pytest_mldeploy.checks.base import CheckResult, Outcome
    from pytest_mldeploy.checks.profiling import ProfileResult, profile_deployment
    from pytest_mldeploy.client import ScoringClient
    from pytest_mldeploy.core.config import Deployment, Project, load_project
    from pytest_mldeploy.core.registry import Registry
    from pytest_mldeploy.core.service import Service
    from pytest_mldeploy.core.targets import get_target
    from pytest_mldeploy.errors import BuildError, ConfigError, MldeployError, RegistryError, ServiceError


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'pytest_mldeploy' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
