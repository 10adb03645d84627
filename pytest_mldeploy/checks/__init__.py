"""The checks that gate a deployment, each a function of a `CheckContext` returning a `CheckResult`.

`all_checks()` lists the built-in ones in the order they run (the registry is
`check_registry.py`; the load `profile` check comes last). Importing this package imports none
of the check modules, so a pytest plugin stays cheap.
"""
from __future__ import annotations

from pytest_mldeploy.checks.base import Check, CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.check_registry import CHECKS, check


def all_checks() -> dict[str, Check]:
    """The built-in checks by name, in the order they run (importing their modules registers them)."""
    from pytest_mldeploy.checks import health, properties, robustness, samples, swagger_check  # noqa: F401
    from pytest_mldeploy.checks.profiling import check as profile_check  # noqa: F401

    return {name: entry.run for name, entry in CHECKS.ordered().items()}


__all__ = ["Check", "CheckContext", "CheckResult", "Outcome", "all_checks", "check"]
