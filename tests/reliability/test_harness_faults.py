"""kill -9 of the harness mid-run: the container it started outlives it, and the next run sweeps it.

A real `pytest --mldeploy` runs on Docker in a copy of example_projects/sklearn-diabetes; once its
service container exists the pytest process is killed with SIGKILL, so none of its exit hooks run.
The container is labelled with its owner's pid and start time; the next `pytest --mldeploy` finds
the owner gone and removes the container before it deploys its own.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest

pytestmark = [pytest.mark.reliability, pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
DEPLOY_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def client() -> Any:
    from pytest_mldeploy.core.targets.docker import DockerTarget

    target = DockerTarget(notice=None)
    if not target.available():
        pytest.skip(f"docker target unavailable: {target.unavailable_reason}")
    return target.client


def _container_of(client: Any, pid: int) -> Optional[Any]:
    found = client.containers.list(all=True, filters={"label": [f"mldeploy.pid={pid}", "mldeploy.managed=true"]})
    return found[0] if found else None


def _pytest_mldeploy(project: Path, *args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "--mldeploy", "--mldeploy-target", "docker", "-p", "no:cacheprovider",
         "-p", "no:randomly", "-q", *args],
        cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_a_harness_killed_mid_run_is_swept_by_the_next_run(client: Any, tmp_path: Path, reliability_counter: Any) -> None:
    import docker.errors

    project = tmp_path / "sklearn-diabetes"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__", "mldeploy-report"))
    first_log = tmp_path / "first.log"
    first = _pytest_mldeploy(project, "-k", "diabetes", log=first_log)
    container = None
    try:
        deadline = time.monotonic() + DEPLOY_TIMEOUT_S
        while container is None and first.poll() is None and time.monotonic() < deadline:
            container = _container_of(client, first.pid)
            time.sleep(0.2)
        assert container is not None, f"no container appeared for pid {first.pid}:\n{first_log.read_text()[-3000:]}"
    finally:
        os.kill(first.pid, signal.SIGKILL)  # the harness only: its container must outlive it
        first.wait(60)
    reliability_counter.add("harness killed with its container up", held=first.returncode == -signal.SIGKILL,
                            detail=f"pytest ended with {first.returncode} before it was killed")
    try:
        container.reload()
        outlived = True
    except docker.errors.NotFound:
        outlived = False  # a reaper (Ryuk) may have taken it already: the sweep is then not needed
    reliability_counter.note("harness killed with its container up",
                             f"container {container.name} {'outlived' if outlived else 'did not outlive'} the harness")

    second_log = tmp_path / "second.log"
    second = _pytest_mldeploy(project, "-k", "health", log=second_log)
    try:
        second.wait(DEPLOY_TIMEOUT_S)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait(30)
    output = second_log.read_text(errors="replace")
    try:
        client.containers.get(container.id)
        gone = False
    except docker.errors.NotFound:
        gone = True
    reliability_counter.add("next run sweeps the dead run's container", held=gone,
                            detail=f"{container.name} still exists after the next run:\n{output[-2000:]}")
    if outlived:
        reliability_counter.add("the sweep says what it removed", held=f"removed stale container {container.name}" in output,
                                detail=f"the next run's output does not name {container.name}:\n{output[-2000:]}")
    reliability_counter.add("next run passes", held=second.returncode == 0, detail=output[-2000:])
    leftover = _container_of(client, second.pid)
    reliability_counter.add("next run leaves no container", held=leftover is None,
                            detail=f"{leftover.name if leftover else ''} left by the second run")
    try:  # whatever the killed harness had started in its session (nothing, normally)
        os.killpg(first.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    failures = {k: v["failures"] for k, v in reliability_counter.kinds.items() if v["failed"]}
    assert not failures, failures
