"""An air-gapped host on its first run: the offline base is bootstrapped, not asked for."""
from __future__ import annotations

import uuid
from pathlib import Path

import docker
import pytest

import pytest_mldeploy.core.base_image as base_image
import pytest_mldeploy.core.base_choice as base_choice
from pytest_mldeploy.core.config import load_project

pytestmark = [pytest.mark.docker, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "example_projects" / "sklearn-diabetes"


def test_a_first_run_without_the_offline_base_builds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    tag = f"mldeploy/base:autobuild-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(base_image, "LOCAL_BASE_TAG", tag)
    monkeypatch.setattr(base_choice, "LOCAL_BASE_TAG", tag)
    monkeypatch.delenv("MLDEPLOY_BASE_IMAGE", raising=False)
    project = load_project(EXAMPLE / "mldeploy.yaml")
    deployment = project.deployments["diabetes"]
    client = docker.from_env()
    said: list[str] = []
    try:
        base = base_choice.choose_base(deployment, project, client=client, progress=said.append)
        assert base.tag == tag
        assert base.python_version == "3.11"
        assert client.images.get(tag) is not None
        assert any("is missing: building it from Debian packages" in line for line in said), said
    finally:
        try:
            client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass
        client.close()
