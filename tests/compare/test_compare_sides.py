"""Sides other than a deployment of the same file: git revisions and Azure ML v2 blue/green deployments."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_mldeploy.cli import main
from pytest_mldeploy.compare import run_compare
from pytest_mldeploy.errors import ConfigError

from compare_projects import AZURE_BLUE_SCORE, BLUE_SCORE, EXAMPLE, SAMPLE_REQUEST, diabetes_project, rollout_folder, variant_script


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository of two commits: the example, then its score.py with the input scaled."""
    root = tmp_path_factory.mktemp("repo")
    config = diabetes_project(root / "service", [], speed=False)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "the example")
    (config.parent / "score.py").write_text(variant_script("scaled"))
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "scaled input")
    return config


def test_git_baseline_finds_the_change_since_that_revision_and_removes_its_worktree(repo: Path, tmp_path: Path) -> None:
    result = run_compare("git:HEAD~1", "baseline", config=repo, target="process", out=tmp_path)
    data = result.to_dict()
    assert data["baseline"]["kind"] == "git" and data["baseline"]["revision"] == _git(repo.parent, "rev-parse", "HEAD~1")
    assert {g["name"]: g["status"] for g in data["gates"]}["answers"] == "fail"
    assert data["answers"]["worstRows"][0]["kind"] == "sample"
    worktrees = _git(repo.parent, "worktree", "list")
    assert len(worktrees.splitlines()) == 1, worktrees  # the temporary checkout is gone


def test_git_baseline_at_the_same_commit_passes(repo: Path) -> None:
    result = run_compare("git:main:baseline", "baseline", config=repo, target="process")
    assert result.passed, result.to_dict()["gates"]


def test_unknown_revision_names_the_fix(repo: Path) -> None:
    with pytest.raises(ConfigError, match="not a revision .* try git:main"):
        run_compare("git:no-such-branch", "baseline", config=repo, target="process")


@pytest.fixture(scope="module")
def safe_rollout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The safe-rollout folder with the example's blue (an input schema, so generated requests too)."""
    return rollout_folder(tmp_path_factory.mktemp("cli") / "endpoints" / "online", BLUE_SCORE)


@pytest.fixture(scope="module")
def azure_rollout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The safe-rollout folder with Azure's schema-less blue: its sample-request.json is the only request there is."""
    return rollout_folder(tmp_path_factory.mktemp("azure") / "endpoints" / "online", AZURE_BLUE_SCORE)


def test_azure_request_file_is_found_and_green_fails_on_answers_and_sensitivity(azure_rollout: Path, tmp_path: Path,
                                                                               monkeypatch, capsys) -> None:
    # No --requests, no profile.requests, no input schema: model-1/sample-request.json (one 2-row request) is all there is.
    monkeypatch.chdir(azure_rollout)
    code = main(["compare", "blue", "green", "--target", "process", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    out = captured.out
    data = json.loads((tmp_path / "compare.json").read_text())
    assert code == 1, out
    notices = [line for line in captured.err.splitlines() if "found beside the deployment's code" in line]
    assert len(notices) == 1 and "sending model-2/sample-request.json" in notices[0], captured.err
    assert data["requests"]["byKind"] == {"sample": 1}
    gates = {g["name"]: g["status"] for g in data["gates"]}
    assert gates["answers"] == "fail" and gates["sensitivity"] == "fail", gates
    row = data["answers"]["worstRows"][0]
    assert row["request"] == "model-2/sample-request.json" and row["candidate"] == 0.5
    assert f"{row['baseline']} | 0.5" in out  # green's answer beside blue's
    assert data["sensitivity"]["derived"] == 8 and "[0.5, 0.5]" in data["sensitivity"]["message"]


def test_azure_blue_against_blue_passes_on_its_found_request(azure_rollout: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(azure_rollout)
    assert main(["compare", "blue", "blue", "--target", "process", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["requests"]["byKind"] == {"sample": 1} and data["answers"]["rows"] == 2
    assert data["sensitivity"]["passed"] and data["sensitivity"]["baselineDistinct"] == 9


def test_green_constant_fails_against_blue_showing_both_answers(safe_rollout: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(safe_rollout)
    code = main(["compare", "blue", "green", "--target", "process", "--out", str(tmp_path),
                 "--requests", "../../model-1/sample-request.json"])
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "compare.json").read_text())
    assert code == 1, out
    assert data["baseline"]["kind"] == "v2" and data["candidate"]["deployment"] == "green"
    gates = {g["name"]: g["status"] for g in data["gates"]}
    assert gates["answers"] == "fail" and gates["sensitivity"] == "fail"
    assert data["requests"]["byKind"]["sample"] == 1
    row = data["answers"]["worstRows"][0]
    assert row["request"] == "sample-request.json"  # the user's own request first
    # Two rows in, two answers out on both sides: compared row by row, each beside its input row.
    assert row["candidate"] == 0.5 and isinstance(row["baseline"], float) and abs(row["baseline"] - 0.5) > 1
    assert row["input"] in json.loads(SAMPLE_REQUEST)["data"]
    assert f"{row['baseline']} | 0.5" in out  # green's answer beside blue's in the terminal summary
    assert "[0.5, 0.5]" in data["sensitivity"]["message"]


def test_blue_against_blue_passes(safe_rollout: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(safe_rollout)
    assert main(["compare", "blue", "blue", "--target", "process", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["requests"]["byKind"].get("generated", 0) > 0 and data["answers"]["mismatchedRows"] == 0


def test_a_v2_neighbour_of_a_deployment_the_project_names_is_a_side(tmp_path: Path) -> None:
    from contextlib import ExitStack

    from pytest_mldeploy.compare.sides import resolve_sides

    sample = tmp_path / "azureml-v2"
    shutil.copytree(EXAMPLE.parent / "azureml-v2", sample)
    (sample / "mldeploy.yaml").write_text("deployments:\n  prod: {online_deployment: managed/sample/blue-deployment.yml}\n")
    with ExitStack() as stack:
        baseline, candidate = resolve_sides("prod", "green", config=sample / "mldeploy.yaml", stack=stack)
    assert (baseline.kind, baseline.deployment.name) == ("deployment", "prod")
    assert (candidate.kind, candidate.deployment.name) == ("v2", "green")
    with ExitStack() as stack, pytest.raises(ConfigError, match="nor an Azure ML v2 deployment .*git:REV, or image:TAG"):
        resolve_sides("prod", "purple", config=sample / "mldeploy.yaml", stack=stack)


def test_git_side_in_a_folder_of_v2_files_takes_the_other_sides_file(safe_rollout: Path, tmp_path: Path, monkeypatch) -> None:
    # Azure's layout has no mldeploy.yaml: `git:main green` checks green-deployment.yml out as it was at main.
    from contextlib import ExitStack

    from pytest_mldeploy.compare.sides import resolve_sides

    root = tmp_path / "cli"
    shutil.copytree(safe_rollout.parents[2], root)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "blue and green")
    monkeypatch.chdir(root / safe_rollout.relative_to(safe_rollout.parents[2]))
    with ExitStack() as stack:
        baseline, candidate = resolve_sides("git:main", "green", config=None, stack=stack)
        assert (baseline.kind, baseline.deployment.name, candidate.kind) == ("git", "green", "v2")
        assert baseline.project.config_path.name == "green-deployment.yml"
    assert "mldeploy-compare-git" not in _git(root, "worktree", "list")


def test_image_side_without_a_docker_engine_says_so(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "image:mldeploy/none:1", "image:mldeploy/none:2"]) == 2
    err = capsys.readouterr().err
    assert "no Docker engine answers" in err and "Traceback" not in err


def test_a_branch_only_the_remote_has_is_suggested_as_its_remote_name(tmp_path: Path) -> None:
    # A fresh clone of a feature branch has origin/main but no local main.
    from pytest_mldeploy.compare.sides import _revision_and_name

    origin = tmp_path / "origin"
    origin.mkdir()
    _git(origin, "init", "-q", "-b", "main")
    _git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "one")
    _git(tmp_path, "clone", "-q", str(origin), "clone")
    _git(tmp_path / "clone", "branch", "-q", "-m", "main", "feature")
    with pytest.raises(ConfigError, match="but 'origin/main' is: write git:origin/main"):
        _revision_and_name("main", tmp_path / "clone")
    assert _revision_and_name("origin/main", tmp_path / "clone")[1] is None


@pytest.mark.docker
def test_image_built_from_a_v2_file_is_a_side_in_that_folder(safe_rollout: Path, monkeypatch) -> None:
    # `mldeploy compare blue image:mldeploy/green:TAG` in Azure's layout: the label names green-deployment.yml.
    import io
    from contextlib import ExitStack

    import docker

    from pytest_mldeploy.compare.sides import resolve_sides

    client = docker.from_env()
    tag = "mldeploy-test/labelled-green:1"
    client.images.build(fileobj=io.BytesIO(b"FROM scratch\nLABEL mldeploy.deployment=green\n"), tag=tag, rm=True)
    try:
        monkeypatch.chdir(safe_rollout)
        with ExitStack() as stack:
            baseline, candidate = resolve_sides("blue", f"image:{tag}", config=None, stack=stack)
        assert (candidate.kind, candidate.deployment.name, candidate.image) == ("image", "green", tag)
        assert candidate.project.config_path.name == "green-deployment.yml"
    finally:
        client.images.remove(tag, force=True)
        client.close()
