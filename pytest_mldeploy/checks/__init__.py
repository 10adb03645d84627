"""The built-in checks that gate a deployment, in the order they run.

`BUILTIN_CHECKS` maps each name to a `Check` (a function of a `CheckContext` returning a
`CheckResult`). The load `profile` check lives in `pytest_mldeploy.checks.profiling`.

The check modules (and Hypothesis with them) are imported on first access to `BUILTIN_CHECKS`,
so importing `pytest_mldeploy.checks.base` from a pytest plugin stays cheap.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from pytest_mldeploy.checks.base import Check, CheckContext, CheckResult, Outcome

_ORDER = (
    ("health", "pytest_mldeploy.checks.health", "check_health"),
    ("swagger", "pytest_mldeploy.checks.schema", "check_swagger"),
    ("properties", "pytest_mldeploy.checks.properties", "check_properties"),
    ("robustness", "pytest_mldeploy.checks.robustness", "check_robustness"),
    ("samples", "pytest_mldeploy.checks.samples", "check_samples"),
)


def __getattr__(name: str) -> Any:
    if name == "BUILTIN_CHECKS":
        checks: dict[str, Check] = {key: getattr(import_module(module), func) for key, module, func in _ORDER}
        globals()["BUILTIN_CHECKS"] = checks
        return checks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BUILTIN_CHECKS", "Check", "CheckContext", "CheckResult", "Outcome"]
