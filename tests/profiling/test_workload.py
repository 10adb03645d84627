"""Where the load's request bodies come from: the requests file, else the swagger example."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_mldeploy.checks.profiling.workload import swagger_example, workload_bodies
from pytest_mldeploy.errors import ConfigError

SWAGGER = {"definitions": {"ServiceInput": {"type": "object", "example": {"data": [[0.1, 1.2]]}}}}


def _deployment(requests=None):  # type: ignore[no-untyped-def]
    return SimpleNamespace(name="demo", profile=SimpleNamespace(requests=requests))


def test_requests_file_lines_are_the_bodies(tmp_path: Path) -> None:
    path = tmp_path / "requests.txt"
    path.write_text('{"data": [[1]]}\n\n  {"data": [[2]]}  \n')
    bodies, source = workload_bodies(_deployment(path), None)
    assert bodies == [b'{"data": [[1]]}', b'{"data": [[2]]}']
    assert "2 request bodies" in source


def test_empty_requests_file_names_the_key_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "requests.txt"
    path.write_text("\n\n")
    with pytest.raises(ConfigError, match=r"deployments\.demo\.profile\.requests: .* holds no request bodies; write one"):
        workload_bodies(_deployment(path), None)


def test_swagger_example_when_no_file() -> None:
    bodies, source = workload_bodies(_deployment(), SWAGGER)
    assert [json.loads(b) for b in bodies] == [{"data": [[0.1, 1.2]]}]
    assert "swagger example" in source


def test_openapi3_example_is_found_too() -> None:
    doc = {"components": {"schemas": {"ServiceInput": {"example": {"x": 1}}}}}
    assert swagger_example(doc) == b'{"x": 1}'


def test_no_file_and_no_example_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="profile.requests: not set, and the service's /swagger.json has no ServiceInput example"):
        workload_bodies(_deployment(), {"definitions": {}})
