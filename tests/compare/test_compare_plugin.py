"""`pytest --mldeploy --mldeploy-baseline BASELINE`: one compare item per deployment, failing on a failed gate."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from compare_projects import AZURE_BLUE_SCORE, GREEN_SCORE, diabetes_project, rollout_folder, variant_script


def _commit(root: Path, message: str) -> None:
    for args in (["add", "."], ["commit", "-qm", message]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(pytester: pytest.Pytester) -> Path:
    """The example committed, then its input scaled in the working tree's second commit."""
    config = diabetes_project(pytester.path / "service", [], speed=False)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=pytester.path, check=True)
    _commit(pytester.path, "the example")
    (config.parent / "score.py").write_text(variant_script("scaled"))
    _commit(pytester.path, "scaled input")
    return config


def test_baseline_option_adds_one_compare_item_per_deployment(pytester: pytest.Pytester, repo: Path) -> None:
    result = pytester.runpytest(str(repo), "--mldeploy", "--mldeploy-baseline", "git:main", "--collect-only", "-q")
    assert "service/mldeploy.yaml::baseline::compare" in result.stdout.str()
    plain = pytester.runpytest(str(repo), "--mldeploy", "--collect-only", "-q")
    assert "::compare" not in plain.stdout.str()


def test_compare_item_fails_against_the_previous_commit_and_passes_against_this_one(pytester: pytest.Pytester, repo: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))  # as GitHub Actions sets it
    common = ("--mldeploy", "--mldeploy-target", "process", "-k", "compare", "-p", "no:cacheprovider",
              "--mldeploy-report", str(pytester.path / "report"))
    failed = pytester.runpytest_subprocess(str(repo), *common, "--mldeploy-baseline", "git:HEAD~1", timeout=600)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*FAIL answers: *differ beyond atol*", "*worst rows (baseline | candidate):*",
                                 "*sample_requests.txt line * row *: * | *", "FAILED service/mldeploy.yaml::baseline::compare - *"])
    written = pytester.path / "report" / "compare" / "baseline"
    assert (written / "compare.json").is_file()
    assert "sample_requests.txt line" in (written / "compare.html").read_text(encoding="utf-8")
    assert (written / "compare.md").read_text(encoding="utf-8").startswith("### mldeploy compare failed: `baseline` against `git:HEAD~1`")
    assert summary.read_text(encoding="utf-8") == (written / "compare.md").read_text(encoding="utf-8")
    passed = pytester.runpytest_subprocess(str(repo), *common, "--mldeploy-baseline", "git:HEAD", timeout=600)
    passed.assert_outcomes(passed=1)
    assert summary.read_text(encoding="utf-8").count("### mldeploy compare") == 2  # appended, not replaced


def test_compare_item_in_azures_layout_finds_its_sample_request_and_calls_a_constant_green_out(pytester: pytest.Pytester) -> None:
    # Azure's safe-rollout folder (no mldeploy.yaml, no input schema): green scored like blue at main, a constant now.
    folder = rollout_folder(pytester.path / "endpoints" / "online", AZURE_BLUE_SCORE)
    green = pytester.path / "endpoints" / "online" / "model-2" / "onlinescoring" / "score.py"
    green.write_text((pytester.path / "endpoints" / "online" / "model-1" / "onlinescoring" / "score.py").read_text())
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=pytester.path, check=True)
    _commit(pytester.path, "green scores like blue")
    green.write_text(GREEN_SCORE)
    result = pytester.runpytest_subprocess(str(folder / "green-deployment.yml"), "--mldeploy", "--mldeploy-target", "process",
                                           "-k", "compare", "-p", "no:cacheprovider", "--mldeploy-baseline", "git:main",
                                           "--mldeploy-report", str(pytester.path / "report"), timeout=600)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "no requests" not in text and "found beside the deployment's code" in text
    result.stdout.fnmatch_lines(["*FAIL answers: *", "*FAIL sensitivity: *[[]0.5, 0.5[]]*whatever they hold*"])
