"""Two `mldeploy base-image --if-missing` at once bootstrap the offline base once, not twice."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

pytestmark = [pytest.mark.reliability, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def fresh_tag():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # no engine
        pytest.skip(f"no Docker engine answers: {exc}")
    tag = f"mldeploy/base:locktest-{uuid.uuid4().hex[:10]}"
    yield tag
    try:
        client.images.remove(tag, force=True)
    except docker.errors.ImageNotFound:
        pass
    client.close()


def test_concurrent_if_missing_bootstraps_once(fresh_tag, tmp_path):
    env = dict(os.environ, MLDEPLOY_CACHE_DIR=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "pytest_mldeploy.cli", "base-image", "--if-missing", "--tag", fresh_tag]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=900), *run.communicate()) for run in runs]
    for code, out, err in results:
        assert code == 0, out + err
    built = [out for _code, out, _err in results if out.startswith("base_image: ")]
    present = [err for _code, _out, err in results if f"base image {fresh_tag} is present" in err]
    assert len(built) == 1, results
    assert len(present) == 1, results
    assert sum(err.count("mmdebstrap --mode=") for _code, _out, err in results) == 1, results
