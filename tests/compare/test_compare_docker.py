"""`mldeploy compare` on the Docker target, with an image built earlier as the baseline."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_mldeploy.compare import run_compare
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.image import build_image

pytestmark = pytest.mark.docker


def test_an_image_built_earlier_against_the_deployment_it_was_built_from(project: Path, tmp_path: Path) -> None:
    loaded = load_project(project)
    built = build_image(loaded.deployments["baseline"], loaded)
    result = run_compare(f"image:{built.tag}", "baseline", config=project, target="docker", out=tmp_path)
    data = result.to_dict()
    assert data["target"] == "docker" and data["baseline"]["kind"] == "image" and data["baseline"]["image"] == built.tag
    gates = {g["name"]: g["status"] for g in data["gates"]}
    assert gates["answers"] == "pass" and gates["contract"] == "pass" and gates["speed"] in ("pass", "warn"), data["gates"]
    for side in ("baseline", "candidate"):
        figures = data["speed"][side]
        assert figures["image_size_mb"] > 50 and figures["cold_start_s"] > 0 and figures["peak_memory_mb"] > 10
    assert (tmp_path / "compare.json").is_file()
