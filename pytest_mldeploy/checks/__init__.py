"""The checks that gate a deployment, each a function of a `CheckContext` returning a `CheckResult`.

`all_checks()` lists them in the order they run (`check_registry.py`, the load `profile` check
included); importing this package imports none of them, so a pytest plugin stays cheap.
"""
from __future__ import annotations

from pytest_mldeploy.checks.base import Check, CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.check_registry import all_checks, check

__all__ = ["Check", "CheckContext", "CheckResult", "Outcome", "all_checks", "check"]
