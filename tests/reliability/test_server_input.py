"""Hostile input on /score: the GET query path has the POST body's limits, and JSON booleans are not numbers.

Each test starts the real scoring server on an Azure-style app root (the sklearn-diabetes example
and two test scripts) and asserts a client error, never a 500 blamed on the script.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
SCRIPTS = REPO / "tests" / "server" / "scripts"
MODEL_FILE = "sklearn_regression_model.pkl"
# Past json's recursion limit (~1,000), inside the request line limit (MLDEPLOY_MAX_REQUEST_LINE_BYTES, 8190).
DEPTH = 1_300
ROW = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.01]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """serve(script_path) -> base URL of a ready server for that entry script (stopped at module end)."""
    processes: list[subprocess.Popen] = []

    def start(script: Path) -> str:
        root = tmp_path_factory.mktemp("app")
        (root / "src").mkdir()
        shutil.copy(script, root / "src" / "score.py")
        version = root / "azureml-models" / "sklearn_regression_model" / "1"
        version.mkdir(parents=True)
        shutil.copy(EXAMPLE / "models" / MODEL_FILE, version / MODEL_FILE)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "MLDEPLOY_", "AML_"))}
        env.update(AML_APP_ROOT=str(root), AZUREML_SOURCE_DIRECTORY="src", AZUREML_ENTRY_SCRIPT="score.py",
                   AZUREML_MODEL_DIR=str(version), PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
        log = open(root / "server.log", "wb")
        process = subprocess.Popen([sys.executable, "-m", "pytest_mldeploy.server", "--host", "127.0.0.1",
                                    "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (root / "server.log").read_text()
            try:
                if requests.get(url + "/", timeout=2).status_code == 200:
                    return url
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        pytest.fail(f"server not ready:\n{(root / 'server.log').read_text()}")

    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)


def _client_error(response: requests.Response) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert isinstance(response.json()["message"], str)


@pytest.mark.parametrize("script", [EXAMPLE / "score.py", SCRIPTS / "plain.py"], ids=["schema", "no-schema"])
def test_deeply_nested_json_is_400_on_get_as_on_post(serve, script: Path) -> None:
    url = serve(script)
    nested = "[" * DEPTH + "]" * DEPTH
    # requests sends [ and ] as %5B and %5D, so the request line is ~7.8 kB.
    got = requests.get(f"{url}/score?data={nested}", timeout=30)
    _client_error(got)
    assert "nested too deeply" in got.json()["message"]
    if script.name == "score.py":
        posted = requests.post(f"{url}/score", data=f'{{"data": {nested}}}',
                               headers={"Content-Type": "application/json"}, timeout=30)
        _client_error(posted)
        assert "nested too deeply" in posted.json()["message"]
    assert requests.get(url + "/", timeout=10).status_code == 200


def test_booleans_are_not_numbers(serve) -> None:
    url = serve(EXAMPLE / "score.py")
    for row in ([False] + ROW[1:], ROW[:9] + [True]):
        _client_error(requests.post(f"{url}/score", json={"data": [row]}, timeout=30))
        _client_error(requests.get(f"{url}/score", params={"data": json.dumps([row])}, timeout=30))
    assert requests.post(f"{url}/score", json={"data": [ROW]}, timeout=30).status_code == 200


def test_booleans_are_not_integers_in_python_typed_input(serve) -> None:
    url = serve(SCRIPTS / "dict_typed.py")
    patient = {"age": 50, "sex": 1, "bmi": 0.06, "bp": 0.02, "s1": -0.04, "s2": -0.03, "s3": -0.04, "s4": 0.0,
               "s5": 0.02, "s6": -0.01, "unit": "mg/dl"}
    for key, value in (("age", True), ("sex", False), ("bmi", True)):
        response = requests.post(f"{url}/score", json={"patient": dict(patient, **{key: value})}, timeout=30)
        _client_error(response)
        assert response.json()["message"].endswith(f"/patient/{key} must be "
                                                   f"{'a number' if key == 'bmi' else 'an integer'}, not a boolean")
    assert requests.post(f"{url}/score", json={"patient": patient}, timeout=30).status_code == 200
