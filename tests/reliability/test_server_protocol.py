"""Issue #9, hole 9: protocol details. 405 names what is allowed, the Bearer scheme is
case-insensitive, /swagger.json is open as on Azure, and an output JSON cannot carry (a model
overflowing to Infinity on a schema-valid 1e308) is reported as the script's output."""
from __future__ import annotations

from typing import Iterator

import pytest
import requests

from live_server import EXAMPLE, SCRIPTS, Server, ServerFactory, make_app

pytestmark = pytest.mark.reliability

KEY = "protocol-key"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path_factory.mktemp("servers"))
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def guarded(servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Server:
    app = make_app(tmp_path_factory.mktemp("guarded"), SCRIPTS / "plain.py", entry_name="score.py")
    return servers(app, env={"MLDEPLOY_AUTH_KEYS": KEY})


@pytest.fixture(scope="module")
def example(servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Server:
    return servers(make_app(tmp_path_factory.mktemp("example"), EXAMPLE / "score.py"))


@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/score", "GET, POST, OPTIONS"),
    ("DELETE", "/score", "GET, POST, OPTIONS"),
    ("POST", "/", "GET, HEAD, OPTIONS"),
    ("POST", "/swagger.json", "GET, OPTIONS"),
])
def test_405_names_the_allowed_methods(guarded: Server, method: str, path: str, allowed: str) -> None:
    response = requests.request(method, guarded.url + path, timeout=30)
    assert response.status_code == 405
    assert response.headers.get("Allow") == allowed
    assert response.json() == {"message": "Method not allowed"}


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(guarded: Server, scheme: str) -> None:
    response = guarded.post("/score", data="x", headers={"Authorization": f"{scheme} {KEY}"})
    assert response.status_code == 200


@pytest.mark.parametrize("value", [KEY, f"Basic {KEY}", f"Bearer{KEY}", f"Bearer {KEY}x", "Bearer", ""])
def test_anything_but_bearer_and_a_key_is_refused(guarded: Server, value: str) -> None:
    response = guarded.post("/score", data="x", headers={"Authorization": value})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_swagger_needs_no_key_as_on_azure(guarded: Server) -> None:
    response = guarded.get("/swagger.json")
    assert response.status_code == 200
    assert response.json()["swagger"] == "2.0"
    assert guarded.post("/score", data="x").status_code == 401


def test_an_output_that_overflows_to_infinity_is_the_scripts_fault(example: Server) -> None:
    """1e308 is a valid number for the schema; Ridge.predict overflows it to inf, which JSON cannot carry."""
    response = example.post("/score", json={"data": [[1e308] * 10]})
    assert response.status_code == 500
    assert response.headers["x-ms-run-function-failed"] == "True"
    message = response.json()["message"]
    assert message.startswith("The scoring script's output cannot be sent as JSON: run() returned a list")
    assert "Out of range float values are not JSON compliant" in message
    assert "not strict JSON" in example.log()
