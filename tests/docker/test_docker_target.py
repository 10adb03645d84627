"""The Docker target against a real engine: limits, failing init(), OOM, timeouts, sweep, cleanup."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.core.service import ServiceFailed, ServiceState
from pytest_mldeploy.core.targets import cleanup
from pytest_mldeploy.core.targets.cleanup import owner_labels, process_start_time, sweep_stale_containers
from pytest_mldeploy.core.targets.docker import DockerTarget, docker_service_from_container
from pytest_mldeploy.errors import ServiceError

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
PROJECTS = REPO / "tests" / "projects"


@pytest.fixture(scope="module")
def target() -> DockerTarget:
    docker_target = DockerTarget(notice=None)
    if not docker_target.available():
        pytest.skip(f"docker target unavailable: {docker_target.unavailable_reason}")
    return docker_target


@pytest.fixture(scope="module")
def client(target):
    return target.client


@pytest.fixture(scope="module", autouse=True)
def no_container_left(target, client):
    """Whatever these tests did (or failed to do), the containers they started are gone afterwards.

    Containers of this run that existed before (a session-scoped service of another module) are
    left alone: the cleanup is by run id, minus what was already there.
    """
    run_filter = {"label": f"{cleanup.LABEL_RUN_ID}={cleanup.RUN_ID}"}
    before = {c.id for c in client.containers.list(all=True, filters=run_filter)}
    yield
    ours = [c for c in client.containers.list(all=True, filters=run_filter) if c.id not in before]
    for container in ours:
        container.remove(force=True, v=True)
    assert [c.name for c in ours] == [], "tests left containers running (removed now)"


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    return Registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture
def services():
    started: list = []
    yield started
    for service in started:
        service.delete()


def _project(project_dir: Path):
    project = load_project(project_dir / "mldeploy.yaml")
    (deployment,) = project.deployments.values()
    return deployment, project


def _deploy(target, project_dir: Path, registry, services, **kwargs):
    deployment, project = _project(project_dir)
    service = target.deploy(deployment, project, registry=registry, **kwargs)
    services.append(service)
    return service


def test_example_is_built_scored_and_limited(target, client, registry, services):
    service = _deploy(target, EXAMPLE, registry, services)
    assert service.state is ServiceState.HEALTHY
    assert service.target == "docker" and service.pid is None and service.image

    response = requests.post(service.scoring_uri, json={"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}, timeout=30)
    assert response.status_code == 200, response.text
    assert isinstance(json.loads(response.text)[0], float)

    attrs = client.api.inspect_container(service.container_id)
    host_config = attrs["HostConfig"]
    assert host_config["NanoCpus"] == 1_000_000_000  # resources.cpu: 1
    assert host_config["Memory"] == 1024**3  # resources.memory_gb: 1
    assert host_config["MemorySwap"] == 1024**3
    bindings = host_config["PortBindings"]["5001/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    labels = attrs["Config"]["Labels"]
    assert labels["mldeploy.managed"] == "true"
    assert labels["mldeploy.run-id"] == cleanup.RUN_ID
    assert labels["mldeploy.pid"] == str(os.getpid())
    assert labels["mldeploy.deployment"] == "diabetes"
    assert attrs["Name"].startswith(f"/mldeploy-diabetes-{cleanup.RUN_ID}-")
    assert service.logs().strip() != ""

    again = docker_service_from_container(service.container_id, client)
    assert again.base_url == service.base_url and again.state is ServiceState.HEALTHY
    assert again.resources.cpu == 1 and again.resources.memory_gb == 1

    container_id = service.container_id
    service.delete()
    service.delete()
    assert client.containers.list(all=True, filters={"id": container_id}) == []


def test_kept_service_survives_run_cleanup_and_reattaches(target, client, registry, services):
    service = _deploy(target, EXAMPLE, registry, services, keep=True, wait=False)
    labels = client.api.inspect_container(service.container_id)["Config"]["Labels"]
    assert labels["mldeploy.keep"] == "true"
    assert "org.testcontainers.session-id" not in labels  # Ryuk would reap it with the session
    assert service.container_name not in cleanup.cleanup_run(cleanup.RUN_ID, client)
    again = docker_service_from_container(service.container_name, client)
    assert again.container_id == service.container_id
    again.wait_until_healthy(timeout=120)
    again.delete()
    assert client.containers.list(all=True, filters={"id": service.container_id}) == []


def test_resources_override_is_applied(target, client, registry, services):
    deployment, _ = _project(EXAMPLE)
    override = deployment.resources.model_copy(update={"cpu": 0.5, "memory_gb": 0.75})
    service = _deploy(target, EXAMPLE, registry, services, resources=override, wait=False)
    host_config = client.api.inspect_container(service.container_id)["HostConfig"]
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["Memory"] == int(0.75 * 1024**3)


def test_failing_init_is_failed_with_its_traceback(target, registry, services):
    service = _deploy(target, PROJECTS / "init-fails", registry, services, wait=False)
    with pytest.raises(ServiceFailed) as caught:
        service.wait_until_healthy(timeout=120)
    assert service.state is ServiceState.FAILED
    assert service.reason.startswith("init() raised RuntimeError: cannot load the model")
    assert "Traceback (most recent call last):" in service.reason
    assert "service 'init-fails' (docker, container" in str(caught.value)


def test_deploy_that_fails_removes_its_container(target, client, registry, services):
    before = {c.id for c in client.containers.list(all=True, filters={"label": "mldeploy.deployment=init-fails"})}
    with pytest.raises(ServiceError, match="init\\(\\) raised RuntimeError"):
        _deploy(target, PROJECTS / "init-fails", registry, services)
    after = {c.id for c in client.containers.list(all=True, filters={"label": "mldeploy.deployment=init-fails"})}
    assert after <= before


def test_oom_kill_is_reported_with_the_limit(target, registry, services):
    service = _deploy(target, PROJECTS / "memory-hog", registry, services, wait=False)
    with pytest.raises(ServiceFailed) as caught:
        service.wait_until_healthy(timeout=120)
    assert service.state is ServiceState.FAILED
    assert "OOM-killed" in service.reason and "128 MiB" in service.reason
    assert "OOM-killed" in str(caught.value)


def test_health_timeout(target, registry, services):
    service = _deploy(target, PROJECTS / "slow-init", registry, services, wait=False)
    with pytest.raises(ServiceFailed):
        service.wait_until_healthy(timeout=3)
    assert service.state is ServiceState.FAILED
    assert "timed out after 3 s waiting for GET / to answer 200" in service.reason


def _dead_pid_and_start() -> tuple[int, float]:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start_time(child.pid)
    child.wait()
    assert start is not None and process_start_time(child.pid) is None
    return child.pid, start


def test_sweep_removes_stale_and_leaves_live_owners(target, client):
    from pytest_mldeploy.core.base_image import ensure_base_image

    image = ensure_base_image(client=client).tag
    dead_pid, dead_start = _dead_pid_and_start()
    stale_labels = owner_labels("sweep-test")
    stale_labels.update({"mldeploy.pid": str(dead_pid), "mldeploy.pid-start": f"{dead_start:.3f}", "mldeploy.run-id": "stale000"})
    elsewhere = dict(stale_labels, **{"mldeploy.host": socket.gethostname() + "-elsewhere", "mldeploy.run-id": "other000"})
    kept = dict(stale_labels, **{"mldeploy.keep": "true", "mldeploy.run-id": "kept0000"})
    live = owner_labels("sweep-test")  # this process: alive, this run
    made = []
    try:
        for name, labels in (("stale", stale_labels), ("elsewhere", elsewhere), ("kept", kept), ("live", live)):
            made.append(
                client.containers.create(image, ["sleep", "300"], name=f"mldeploy-sweep-{name}-{cleanup.RUN_ID}", labels=labels)
            )
        removed = sweep_stale_containers(client)
        assert f"mldeploy-sweep-stale-{cleanup.RUN_ID}" in removed
        names = {c.name for c in client.containers.list(all=True, filters={"label": "mldeploy.deployment=sweep-test"})}
        assert names >= {f"mldeploy-sweep-{n}-{cleanup.RUN_ID}" for n in ("elsewhere", "kept", "live")}
        assert f"mldeploy-sweep-stale-{cleanup.RUN_ID}" not in names
    finally:
        for container in made:
            try:
                container.remove(force=True, v=True)
            except Exception:
                pass


def test_a_failing_test_leaves_no_container(pytester, client):
    """An inner pytest run deploys, then fails (and never deletes): its exit cleanup removes the container."""
    pytester.makepyfile(
        test_inner=textwrap.dedent(
            f"""
            from pytest_mldeploy.core.config import load_project
            from pytest_mldeploy.core.registry import Registry
            from pytest_mldeploy.core.targets.docker import DockerTarget

            def test_deploys_then_fails(tmp_path):
                project = load_project({str(EXAMPLE / "mldeploy.yaml")!r})
                service = DockerTarget(notice=None).deploy(
                    project.deployments["diabetes"], project, registry=Registry(tmp_path / "r"), wait=False
                )
                print("CONTAINER", service.container_id)
                assert False, "failing on purpose with the service running"
            """
        )
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    ids = re.findall(r"CONTAINER ([0-9a-f]{64})", result.stdout.str())
    assert len(ids) == 1
    assert client.containers.list(all=True, filters={"id": ids[0]}) == []


def test_sigterm_removes_the_run_containers(client):
    """A run ended by SIGTERM (CI cancelling a job) removes its containers on the way out."""
    script = textwrap.dedent(
        f"""
        import sys, tempfile, time
        from pytest_mldeploy.core.config import load_project
        from pytest_mldeploy.core.registry import Registry
        from pytest_mldeploy.core.targets.docker import DockerTarget

        project = load_project({str(EXAMPLE / "mldeploy.yaml")!r})
        service = DockerTarget(notice=None).deploy(
            project.deployments["diabetes"], project, registry=Registry(tempfile.mkdtemp()), wait=False
        )
        print("CONTAINER", service.container_id, flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        match = re.search(r"CONTAINER ([0-9a-f]{64})", line)
        assert match, f"the child printed {line!r}"
        assert len(client.containers.list(all=True, filters={"id": match.group(1)})) == 1
        child.terminate()
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -15  # ended by SIGTERM, after cleaning up
    assert client.containers.list(all=True, filters={"id": match.group(1)}) == []
