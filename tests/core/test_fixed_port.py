"""A deployment's fixed `port` (mldeploy.yaml or LocalWebservice's deploymentconfig.json) is for serve/deploy only."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.core.service import ServiceState
from pytest_mldeploy.core.targets.common import free_port, serving_port
from pytest_mldeploy.core.targets.process import ProcessTarget

SCORE = "def init():\n    pass\n\ndef run(raw_data):\n    return {'ok': True}\n"


@pytest.fixture
def local_webservice(tmp_path: Path) -> Path:
    """A project whose port comes from a LocalWebservice deploymentconfig.json, as Azure's CLI writes it."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "score.py").write_text(SCORE)
    (root / "inferenceconfig.json").write_text(json.dumps({"entryScript": "score.py"}))
    (root / "mldeploy.yaml").write_text(
        "deployments:\n  local:\n    inference_config: inferenceconfig.json\n    deployment_config: deploymentconfig.json\n"
    )
    return root


def _write_port(root: Path, port: int) -> None:
    (root / "deploymentconfig.json").write_text(json.dumps({"computeType": "local", "port": port}))


def test_serving_port_prefers_the_command_line_then_the_deployment():
    class D:
        port = 8890

    class NoPort:
        port = None

    assert serving_port(D(), 9000) == 9000
    assert serving_port(D(), None) == 8890
    assert serving_port(NoPort(), None) is None


def test_a_taken_fixed_port_does_not_fail_a_deploy_for_checks(local_webservice):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        _write_port(local_webservice, taken)
        project = load_project(local_webservice)
        deployment = project.deployments["local"]
        assert deployment.port == taken
        service = ProcessTarget().deploy(deployment, project, registry=Registry(local_webservice / ".reg"))
        try:
            assert service.state is ServiceState.HEALTHY
            assert service.base_url != f"http://127.0.0.1:{taken}"
        finally:
            service.delete()


def test_mldeploy_serve_publishes_on_the_fixed_port(local_webservice):
    port = free_port()
    _write_port(local_webservice, port)
    server = subprocess.Popen(
        [sys.executable, "-m", "pytest_mldeploy.cli", "serve", "--config", str(local_webservice / "mldeploy.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        first = server.stdout.readline()
        assert first.strip() == f"scoring_uri: http://127.0.0.1:{port}/score", first + server.stdout.read(2000)
        assert requests.post(f"http://127.0.0.1:{port}/score", json={}, timeout=10).json() == {"ok": True}
    finally:
        server.terminate()
        server.wait(timeout=30)
