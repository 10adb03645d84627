"""Nothing secret goes into an image, a log line, a report, a curl line or a process argument.

The keys are written where users write them: `auth.keys` in `mldeploy.yaml` (which sits in the
source directory, so the whole folder is the app) and `primaryKey`/`secondaryKey` in an Azure
`deploymentconfig.json`. They must reach the server at run time only (its environment).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.image_prune import remove_deployment_images
from pytest_mldeploy.core.layout import lay_out_app
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.core.targets.process import ProcessTarget

pytestmark = pytest.mark.reliability

# run() fails on every request, so the samples check writes a failure report with the request,
# the service log tail and a curl line.
SCORE = """
import logging

def init():
    logging.getLogger("score").info("init done")

def run(raw_data):
    raise ValueError("this service always fails")
"""


def _key(label: str) -> str:
    return f"mldeploy-secret-{label}-{uuid.uuid4().hex}"


@pytest.fixture
def keyed_project(tmp_path: Path):
    """A project folder holding score.py, mldeploy.yaml with auth.keys and a deploymentconfig.json with keys."""
    yaml_key, azure_key, second_key = _key("yaml"), _key("azure"), _key("second")
    root = tmp_path / "keyed"
    root.mkdir()
    (root / "score.py").write_text(SCORE)
    (root / "requests.txt").write_text('{"data": [1, 2, 3]}\n')
    name = f"keyed-{uuid.uuid4().hex[:8]}"
    (root / "mldeploy.yaml").write_text(
        "deployments:\n"
        f"  {name}:\n"
        "    entry_script: score.py\n"
        f"    auth: {{enabled: true, keys: [{yaml_key}]}}\n"
        "    profile: {requests: requests.txt}\n"
        f"  {name}-azure:\n"
        "    entry_script: score.py\n"
        "    deployment_config: deploymentconfig.json\n"
    )
    (root / "deploymentconfig.json").write_text(json.dumps(
        {"computeType": "ACI", "authEnabled": True, "primaryKey": azure_key, "secondaryKey": second_key}))
    return root, name, [yaml_key, azure_key, second_key]


def _files_containing(folder: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.relative_to(folder)} holds {s[:22]}…" for s in secrets if s.encode() in data]
    return found


def test_the_app_layout_leaves_out_config_files_with_keys(keyed_project, tmp_path):
    root, name, secrets = keyed_project
    project = load_project(root)
    registry = Registry(tmp_path / "registry")
    for deployment in project.deployments.values():
        app = tmp_path / f"app-{deployment.name}"
        layout = lay_out_app(deployment, [], registry, app)
        assert (layout.source_dir / "score.py").is_file()
        assert not (layout.source_dir / "mldeploy.yaml").exists()
        assert not (layout.source_dir / "deploymentconfig.json").exists()
        assert _files_containing(app, secrets) == []


def test_process_server_gets_keys_in_its_environment_not_its_arguments(keyed_project, tmp_path):
    root, name, secrets = keyed_project
    project = load_project(root)
    service = ProcessTarget().deploy(project.deployments[name], project, registry=Registry(tmp_path / "registry"))
    try:
        assert service.keys == [secrets[0]]
        process = psutil.Process(service.pid)
        processes = [process, *process.children(recursive=True)]
        assert all(secrets[0] not in " ".join(p.cmdline()) for p in processes)
        assert process.environ()["MLDEPLOY_AUTH_KEYS"] == secrets[0]
        denied = requests.post(service.scoring_uri, json={}, headers={"Authorization": "Bearer wrong"}, timeout=10)
        assert denied.status_code == 401
        allowed = requests.post(service.scoring_uri, json={}, headers={"Authorization": f"Bearer {secrets[0]}"}, timeout=10)
        assert allowed.status_code == 500  # run() always fails; the key was accepted
        assert secrets[0] not in service.logs()
    finally:
        service.delete()


def test_a_failing_run_never_prints_or_writes_the_key(keyed_project, tmp_path):
    root, name, secrets = keyed_project
    report_dir = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if k != "MLDEPLOY_BASE_IMAGE"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(root / "mldeploy.yaml"), "--mldeploy", "--mldeploy-target", "process",
         "-p", "no:cacheprovider", "-k", "samples or health", f"--mldeploy-report={report_dir}",
         f"--mldeploy-deployment={name}", "-rA"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 1, output  # the samples check fails, with a report
    assert "reproduce with" in output and "curl " in output, output
    assert "Authorization: Bearer $MLDEPLOY_KEY" in output
    assert all(secret not in output for secret in secrets), output
    if report_dir.exists():
        assert _files_containing(report_dir, secrets) == []


@pytest.mark.docker
@pytest.mark.slow
def test_the_key_is_in_no_image_layer_argument_or_log(keyed_project, tmp_path, monkeypatch):
    from pytest_mldeploy.core.targets.docker import DockerTarget

    target = DockerTarget(notice=None)
    if not target.available():
        pytest.skip(f"docker target unavailable: {target.unavailable_reason}")
    root, name, secrets = keyed_project
    monkeypatch.delenv("MLDEPLOY_BASE_IMAGE", raising=False)
    project = load_project(root)
    registry = Registry(tmp_path / "registry")
    services = []
    try:
        for deployment in project.deployments.values():
            services.append(target.deploy(deployment, project, registry=registry))
        for service in services:
            key = service.keys[0]
            assert key in secrets
            attrs = target.client.api.inspect_container(service.container_id)
            shown = json.dumps({"Args": attrs.get("Args"), "Cmd": attrs["Config"].get("Cmd"),
                                "Entrypoint": attrs["Config"].get("Entrypoint"), "Labels": attrs["Config"].get("Labels"),
                                "Path": attrs.get("Path")})
            assert all(secret not in shown for secret in secrets)
            # Run time only: the environment of this container.
            assert f"MLDEPLOY_AUTH_KEYS={','.join(service.keys)}" in attrs["Config"]["Env"]
            image = target.client.images.get(service.image)
            assert all(secret not in json.dumps(image.attrs["Config"]) for secret in secrets)
            assert all(f"MLDEPLOY_AUTH_KEYS" not in item for item in image.attrs["Config"].get("Env") or [])
            answer = requests.post(service.scoring_uri, json={}, headers={"Authorization": f"Bearer {key}"}, timeout=10)
            assert answer.status_code == 500
            assert all(secret not in service.logs() for secret in secrets)
            saved = tmp_path / f"{service.name}.tar"
            with open(saved, "wb") as out:
                subprocess.run(["docker", "save", service.image], stdout=out, check=True, timeout=300)
            # `docker save` writes every layer as an uncompressed tar: a plain byte search sees every file.
            patterns = [arg for secret in secrets for arg in ("-e", secret)]
            found = subprocess.run(["grep", "-c", "-a", "-F", *patterns, str(saved)],
                                   capture_output=True, text=True)
            assert found.stdout.strip() == "0", f"a key is in a layer of {service.image}"
            saved.unlink()
    finally:
        for service in services:
            service.delete()
        for deployment in project.deployments.values():
            remove_deployment_images(deployment.name, client=target.client)
