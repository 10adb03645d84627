"""`Project.deployment`: the one place that chooses a deployment (the CLI and the pytest fixtures ask it)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "example_projects" / "sklearn-diabetes"


@pytest.fixture(autouse=True)
def in_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLE)  # so errors say `mldeploy.yaml`


def test_without_a_name_the_only_deployment_is_chosen() -> None:
    assert load_project().deployment().name == "diabetes"


def test_without_a_name_several_deployments_are_listed_with_how_to_name_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "score.py").write_text("def init(): pass\n\ndef run(data): return data\n")
    (tmp_path / "mldeploy.yaml").write_text("deployments:\n  a: {entry_script: score.py}\n  b: {entry_script: score.py}\n")
    monkeypatch.chdir(tmp_path)
    project = load_project()
    with pytest.raises(ConfigError) as err:
        project.deployment(None, "name one on the command line")
    assert str(err.value) == "mldeploy.yaml: deployments: 2 deployments (a, b); name one on the command line"
    assert project.deployment("b").name == "b"


def test_an_unknown_name_gets_the_closest_one_and_the_list() -> None:
    with pytest.raises(ConfigError) as err:
        load_project().deployment("diabetis", "unused when a name is given")
    assert str(err.value) == "mldeploy.yaml: deployments: no deployment 'diabetis' (did you mean 'diabetes'?); there are: diabetes"
