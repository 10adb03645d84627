"""Service images against the real engine: the example image serves, reuse, layer caching, failures.

Uses the offline base (`mldeploy/base:bookworm-py3.11`, bootstrapped when missing) and the
wheelhouse cache (resolved from PyPI once per requirements set). Every image made here is removed
afterwards except the base and the example project's own image.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest
import requests

from pytest_mldeploy.core.base_image import LOCAL_BASE_TAG, ensure_base_image
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.image import build_image, docker_build, image_repository, write_build_context
from pytest_mldeploy.core.image_prune import remove_deployment_images
from pytest_mldeploy.errors import BuildError

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"


@pytest.fixture(scope="module")
def client():
    try:
        engine = docker.from_env(timeout=300)
        engine.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine answers: {exc}")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def base(client):
    return ensure_base_image(LOCAL_BASE_TAG, client=client, bootstrap=True)


@pytest.fixture
def own_project(tmp_path):
    """A copy of the example project under a deployment name no one else uses; its images are removed."""
    name = f"imgtest-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "proj"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mldeploy*", "__pycache__"))
    config = root / "mldeploy.yaml"
    config.write_text(config.read_text().replace("  diabetes:", f"  {name}:"))
    yield root, name
    remove_deployment_images(name, client=docker.from_env())


@contextmanager
def _serve(client, tag: str):
    container = client.containers.run(tag, detach=True, ports={"5001/tcp": ("127.0.0.1", None)})
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["5001/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                health = requests.get(url + "/", timeout=2)
                if health.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            container.reload()
            if container.status != "running" or time.monotonic() > deadline:
                raise AssertionError(f"container {container.status}; log:\n{container.logs(tail=30).decode()}")
            time.sleep(0.5)
        yield url, health, container
    finally:
        container.remove(force=True)


def test_example_image_serves_and_is_then_reused(client, base):
    project = load_project(EXAMPLE)
    deployment = project.deployments["diabetes"]
    built = build_image(deployment, project, client=client, base_image=base.tag)
    assert built.tag == f"mldeploy/diabetes:{built.inputs_hash[:16]}"
    image = client.images.get(built.tag)
    labels = image.labels
    assert labels["mldeploy.inputs"] == built.inputs_hash
    assert labels["mldeploy.deployment"] == "diabetes"
    assert labels["mldeploy.models"].startswith("sklearn_regression_model:")
    assert labels["org.opencontainers.image.base.digest"] == base.id
    config = image.attrs["Config"]
    assert config["User"] == "mldeploy"
    assert config["WorkingDir"] == "/var/azureml-app"
    assert "5001/tcp" in config["ExposedPorts"]
    assert "Healthcheck" in config

    sample = json.loads((EXAMPLE / "sample_requests.txt").read_text().splitlines()[0])
    with _serve(client, built.tag) as (url, health, container):
        assert health.text == "Healthy"
        scored = requests.post(url + "/score", json=sample, timeout=30)
        assert scored.status_code == 200, scored.text
        assert len(scored.json()) == len(sample["data"])
        assert all(isinstance(value, float) for value in scored.json())
        whoami = container.exec_run(["python", "-c", "import os, sys; print(os.getuid(), sys.prefix)"]).output.decode().split()
        assert whoami == ["10001", "/opt/venv"]
        assert container.exec_run(["ls", "/wheels"]).exit_code != 0

    again = build_image(deployment, project, client=client, base_image=base.tag)
    assert again.reused is True
    assert (again.tag, again.id, again.inputs_hash) == (built.tag, built.id, built.inputs_hash)


def test_score_change_rebuilds_only_the_source_layer(client, base, own_project):
    root, name = own_project
    project = load_project(root)
    first = build_image(project.deployments[name], project, client=client, base_image=base.tag)
    assert first.reused is False

    score = root / "score.py"
    score.write_text(score.read_text() + "\n# a comment changes the source layer only\n")
    project = load_project(root)
    second = build_image(project.deployments[name], project, client=client, base_image=base.tag)
    assert second.reused is False
    assert second.tag != first.tag

    old_layers = client.images.get(first.tag).attrs["RootFS"]["Layers"]
    new_layers = client.images.get(second.tag).attrs["RootFS"]["Layers"]
    # base, user, venv, workdir, models, server come from the cache; only the source layer is new.
    assert len(new_layers) == len(old_layers) >= 6
    assert new_layers[:-1] == old_layers[:-1]
    assert new_layers[-1] != old_layers[-1]
    # The steps up to the source COPY are the very same cached images, not rebuilt look-alikes.
    old_steps = [step["Id"] for step in reversed(client.images.get(first.tag).history())]
    new_history = list(reversed(client.images.get(second.tag).history()))
    source_copy = max(i for i, step in enumerate(new_history) if "COPY dir:" in step["CreatedBy"])
    assert [step["Id"] for step in new_history[:source_copy]] == old_steps[:source_copy]
    assert new_history[source_copy]["Id"] != old_steps[source_copy]


def test_dockerfile_only_context_builds_by_hand_to_the_same_image_config(client, base, own_project, tmp_path):
    root, name = own_project
    project = load_project(root)
    built = build_image(project.deployments[name], project, client=client, base_image=base.tag)
    context = write_build_context(project.deployments[name], project, tmp_path / "ctx", base_image=base.tag)
    manual = f"{image_repository(name)}:by-hand"
    subprocess.run(["docker", "build", "-q", "-t", manual, str(context)], check=True, capture_output=True,
                   env={**os.environ, "DOCKER_BUILDKIT": "0"})
    by_hand, ours = client.images.get(manual).attrs["Config"], client.images.get(built.tag).attrs["Config"]
    for key in ("Labels", "Env", "Cmd", "User", "WorkingDir", "ExposedPorts", "Healthcheck"):
        assert by_hand[key] == ours[key], key
    assert by_hand["Labels"]["mldeploy.inputs"] == built.inputs_hash
    # base and user layers are shared; later layers match when the builder's cache applies
    # (the COPY cache key depends on the client's context tar, see docs/images.md).
    assert client.images.get(manual).attrs["RootFS"]["Layers"][:2] == client.images.get(built.tag).attrs["RootFS"]["Layers"][:2]


def test_a_failing_run_step_is_named_with_its_log(client, base, own_project, tmp_path):
    root, name = own_project
    project = load_project(root)
    context = write_build_context(project.deployments[name], project, tmp_path / "ctx", base_image=base.tag)
    pins = context / "wheels" / "requirements.txt"
    pins.write_text(pins.read_text() + "not-in-the-wheelhouse==1.0\n")
    with pytest.raises(BuildError) as caught:
        docker_build(client, context, f"{image_repository(name)}:broken")
    message = str(caught.value)
    assert f"image {image_repository(name)}:broken: build failed at step 4/" in message
    assert ": RUN if [ -x /wheels/uv ] && python3 -m venv" in message.splitlines()[0]
    assert "not-in-the-wheelhouse" in message
    assert "Traceback" not in message
    assert "\x1b[" not in message


def test_missing_base_image_is_reported_without_pulling(client, own_project):
    root, name = own_project
    project = load_project(root)
    with pytest.raises(BuildError, match=r"base image mldeploy/nope:1 is not in the local Docker engine.*docker pull mldeploy/nope:1"):
        build_image(project.deployments[name], project, client=client, base_image="mldeploy/nope:1")
