"""The built-in checks that gate a deployment, in the order they run.

`BUILTIN_CHECKS` maps each name to a `Check` (a function of a `CheckContext` returning a
`CheckResult`). The load `profile` check lives in `pytest_mldeploy.checks.profiling`.
"""
from __future__ import annotations

from pytest_mldeploy.checks.base import Check, CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.health import check_health
from pytest_mldeploy.checks.properties import check_properties
from pytest_mldeploy.checks.robustness import check_robustness
from pytest_mldeploy.checks.samples import check_samples
from pytest_mldeploy.checks.schema import check_swagger

BUILTIN_CHECKS: dict[str, Check] = {
    "health": check_health,
    "swagger": check_swagger,
    "properties": check_properties,
    "robustness": check_robustness,
    "samples": check_samples,
}

__all__ = ["BUILTIN_CHECKS", "Check", "CheckContext", "CheckResult", "Outcome"]
