"""The ordered check registry: names, order, the contract precondition, and a cheap import for plugins."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import requests

from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.check_registry import CheckRegistry


def test_builtin_checks_in_order_profile_last():
    from pytest_mldeploy.checks import all_checks

    checks = all_checks()
    assert list(checks) == ["health", "swagger", "properties", "robustness", "samples", "profile"]
    assert all(callable(check) and check.__doc__ for check in checks.values())


def test_the_order_does_not_depend_on_which_module_was_imported_first():
    code = ("import pytest_mldeploy.checks.samples, pytest_mldeploy.checks.robustness; "
            "from pytest_mldeploy.checks import all_checks; print(' '.join(all_checks()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "health swagger properties robustness samples profile"


def test_the_function_name_is_the_check_name_and_order_sorts():
    registry = CheckRegistry()

    @registry.register(order=20)
    def check_second(ctx: CheckContext) -> CheckResult:
        """second"""
        return CheckResult("second", Outcome.PASSED)

    @registry.register(order=10)
    def first(ctx: CheckContext) -> CheckResult:
        """first"""
        return CheckResult("first", Outcome.PASSED)

    assert list(registry.ordered()) == ["first", "second"]


def test_two_modules_cannot_register_the_same_name():
    registry = CheckRegistry()

    def check_twice(ctx: CheckContext) -> CheckResult:
        return CheckResult("twice", Outcome.PASSED)

    registry.register(order=1)(check_twice)
    other = type(check_twice)(check_twice.__code__, {"__name__": "elsewhere"}, "check_twice")
    with pytest.raises(ValueError, match="two checks are named 'twice'"):
        registry.register(order=2)(other)


class _Client:
    swagger_url = "http://127.0.0.1:1/swagger.json"

    def __init__(self) -> None:
        self.fetches = 0

    def swagger_response(self, version: int = 2) -> requests.Response:
        self.fetches += 1
        raise requests.ConnectionError("connection refused")


def _context(client: _Client) -> CheckContext:
    return CheckContext(project=SimpleNamespace(), deployment=SimpleNamespace(name="d"), service=SimpleNamespace(),
                        client=client)  # type: ignore[arg-type]


def test_requires_contract_fails_without_running_when_the_swagger_cannot_be_read():
    registry = CheckRegistry()
    ran = []

    @registry.register(order=1, requires_contract=True)
    def check_needs_it(ctx: CheckContext) -> CheckResult:
        """needs the contract"""
        ran.append(ctx)
        return CheckResult("needs_it", Outcome.PASSED)

    client = _Client()
    ctx = _context(client)
    first, second = check_needs_it(ctx), registry.ordered()["needs_it"].run(ctx)
    assert not ran
    for result in (first, second):
        assert result.outcome is Outcome.FAILED and result.name == "needs_it"
        assert "could not read the service's swagger document: connection refused" in result.summary
        assert client.swagger_url in result.report
    assert client.fetches == 1  # the context keeps the first answer (here: none) for every check


def test_the_contract_is_fetched_once_per_context():
    document = {"swagger": "2.0", "definitions": {"ServiceInput": {
        "type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"], "example": {"x": 1}}}}
    response = requests.Response()
    response.status_code, response._content = 200, __import__("json").dumps(document).encode()

    class Served(_Client):
        def swagger_response(self, version: int = 2) -> requests.Response:
            self.fetches += 1
            return response

    client = Served()
    ctx = _context(client)
    assert ctx.contract.input["required"] == ["x"] and ctx.contract.example == {"x": 1}
    assert ctx.contract is ctx.contract and ctx.swagger_response() is response
    assert client.fetches == 1


def test_importing_the_result_types_does_not_import_hypothesis():
    code = "import sys, pytest_mldeploy.checks.base; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_listing_the_checks_does_not_import_hypothesis_or_the_spec_validator():
    code = ("import sys; import pytest_mldeploy.checks.health, pytest_mldeploy.checks.swagger_check, "
            "pytest_mldeploy.checks.properties, pytest_mldeploy.checks.robustness, pytest_mldeploy.checks.samples; "
            "print('hypothesis' in sys.modules, 'openapi_spec_validator' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False False"
