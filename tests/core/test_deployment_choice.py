"""`Project.deployment`: the one place that chooses a deployment (the CLI and the pytest fixtures ask it)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "example_projects" / "sklearn-diabetes"


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    monkeypatch.chdir(target)
    return target


def test_without_a_name_the_only_deployment_is_chosen(project_dir: Path) -> None:
    assert load_project().deployment().name == "diabetes"


def test_without_a_name_several_deployments_are_listed_with_how_to_name_one(project_dir: Path) -> None:
    (project_dir / "mldeploy.yaml").write_text(
        "deployments:\n  a: {entry_script: score.py, models: [{path: models/sklearn_regression_model.pkl}]}\n"
        "  b: {entry_script: score.py, models: [{path: models/sklearn_regression_model.pkl}]}\n"
    )
    project = load_project()
    with pytest.raises(ConfigError) as err:
        project.deployment(None, "name one on the command line")
    assert str(err.value) == "mldeploy.yaml: deployments: 2 deployments (a, b); name one on the command line"
    assert project.deployment("b").name == "b"


def test_an_unknown_name_gets_the_closest_one_and_the_list(project_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_project().deployment("diabetis", "unused when a name is given")
    assert str(err.value) == "mldeploy.yaml: deployments: no deployment 'diabetis' (did you mean 'diabetes'?); there are: diabetes"
