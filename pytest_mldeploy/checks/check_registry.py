"""The one ordered registry of checks: `@check(order=...)` puts a function in it.

A check is a function of a `CheckContext` returning a `CheckResult`; its name is the function's
name without the `check_` prefix (`check_health` is `health`). The order is the order `pytest
--mldeploy` and `mldeploy check` run them in: the quick ones first, the load profile last.

    order  check        module
    10     health       checks/health.py
    20     swagger      checks/swagger_check.py
    30     properties   checks/properties.py
    40     robustness   checks/robustness.py
    50     samples      checks/samples.py
    90     profile      checks/profiling/check.py

`requires_contract=True` is a precondition: when the service's swagger document cannot be read,
the check fails with that reason without running. Registering is importing:
`pytest_mldeploy.checks.all_checks()` imports the built-in check modules on first use, and those
modules import Hypothesis and the other heavy libraries only when a check runs, so listing the
checks stays cheap.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from pytest_mldeploy.checks.base import Check, CheckContext, CheckResult, Outcome

PREFIX = "check_"


@dataclass(frozen=True)
class RegisteredCheck:
    """One check in the registry: its name, its place in the order, and the function that runs it."""

    name: str
    order: int
    requires_contract: bool
    function: Check
    """The function as written."""
    run: Check
    """The function with its precondition applied: what the runner calls."""


class CheckRegistry:
    """Checks by name, listed in their `order` (ties in the order they were registered)."""

    def __init__(self) -> None:
        self._checks: dict[str, RegisteredCheck] = {}

    def register(self, *, order: int, requires_contract: bool = False) -> Callable[[Check], Check]:
        """A decorator adding a check; it returns the check with its precondition applied."""

        def add(function: Check) -> Check:
            name = function.__name__[len(PREFIX):] if function.__name__.startswith(PREFIX) else function.__name__
            known = self._checks.get(name)
            if known is not None and known.function.__module__ != function.__module__:
                raise ValueError(f"two checks are named {name!r}: in {known.function.__module__} and in "
                                 f"{function.__module__}; rename one of the functions")
            run = _with_precondition(name, function) if requires_contract else function
            self._checks[name] = RegisteredCheck(name, order, requires_contract, function, run)
            return run

        return add

    def ordered(self) -> dict[str, RegisteredCheck]:
        """Every registered check by name, in the order they run."""
        entries = sorted(enumerate(self._checks.values()), key=lambda pair: (pair[1].order, pair[0]))
        return {entry.name: entry for _index, entry in entries}


def _with_precondition(name: str, function: Check) -> Check:
    @functools.wraps(function)
    def run(ctx: CheckContext) -> CheckResult:
        import requests

        try:
            ctx.contract
        except (requests.RequestException, ValueError) as exc:
            return unreadable_contract(name, ctx.client.swagger_url, exc)
        return function(ctx)

    return run


def unreadable_contract(check: str, swagger_url: str, exc: Exception) -> CheckResult:
    """The failed result of a check that needs the service's swagger document and could not read it."""
    summary = f"could not read the service's swagger document: {exc}"
    return CheckResult(check, Outcome.FAILED, summary,
                       f"[{check}] {summary}\n\nexpected: GET {swagger_url} answers 200 with Swagger 2.0")


CHECKS = CheckRegistry()
"""The registry `pytest --mldeploy` and `mldeploy check` run."""

check = CHECKS.register
