"""`pytest --mldeploy` end to end, through pytester, on the example and on broken projects."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
PROJECTS = REPO / "tests" / "projects"
QUICK = ["-k", "not profile"]


def copy_project(pytester: pytest.Pytester, source: Path) -> Path:
    target = pytester.path / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    return target


def run(pytester: pytest.Pytester, project: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(str(project), "--mldeploy", "-p", "no:cacheprovider", *args, timeout=600)


def test_without_the_flag_nothing_is_collected(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, EXAMPLE)
    result = pytester.runpytest(str(project / "mldeploy.yaml"), "--collect-only", "-q")
    result.stdout.no_fnmatch_line("*::diabetes::*")


def test_items_are_one_per_deployment_and_check(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, EXAMPLE)
    result = pytester.runpytest(str(project / "mldeploy.yaml"), "--mldeploy", "--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "*mldeploy.yaml::diabetes::health",
        "*mldeploy.yaml::diabetes::swagger",
        "*mldeploy.yaml::diabetes::properties",
        "*mldeploy.yaml::diabetes::robustness",
        "*mldeploy.yaml::diabetes::samples",
        "*mldeploy.yaml::diabetes::profile",
    ])


def test_a_bad_config_is_one_readable_error(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, EXAMPLE)
    config = project / "mldeploy.yaml"
    config.write_text(config.read_text().replace("models/sklearn_regression_model.pkl", "models/missing.pkl"))
    result = pytester.runpytest(str(config), "--mldeploy", "-q")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*mldeploy.yaml: deployments.diabetes.models[[]0[]].path: *missing.pkl does not exist*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_example_passes_on_the_process_target(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, EXAMPLE)
    junit = pytester.path / "junit.xml"
    result = run(pytester, project, "--mldeploy-target", "process", *QUICK, f"--junitxml={junit}",
                 "--mldeploy-examples", "25")
    result.assert_outcomes(passed=8, deselected=1)  # 5 checks + the example's 3 hand-written tests
    result.stdout.fnmatch_lines(["*= mldeploy =*", "*diabetes*process*Healthy*5/5 passed*"])
    assert 'name="swagger"' in junit.read_text()


def test_keyword_selection_and_a_single_deployment(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, EXAMPLE)
    result = run(pytester, project, "--mldeploy-target", "process", "--mldeploy-deployment", "diabetes",
                 "-k", "health or swagger")
    result.assert_outcomes(passed=2, deselected=7)


def test_xdist_workers_each_run_their_own_service(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    project = copy_project(pytester, EXAMPLE)
    result = run(pytester, project, "--mldeploy-target", "process", *QUICK, "-n", "2", "--dist", "loadgroup",
                 "--mldeploy-examples", "10")
    result.assert_outcomes(passed=8)


def test_init_failure_fails_every_check_quickly_with_the_reason(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, EXAMPLE)
    (project / "score.py").write_text(
        (project / "score.py").read_text().replace("def init():\n", "def init():\n    raise RuntimeError('model store offline')\n")
    )
    result = run(pytester, project, "--mldeploy-target", "process", *QUICK, "-p", "no:randomly",
                 "--ignore", str(project / "test_diabetes_service.py"))
    result.assert_outcomes(failed=5, deselected=1)
    result.stdout.fnmatch_lines(["*RuntimeError: model store offline*"])
    result.stdout.fnmatch_lines(["*diabetes*Failed*0/5 passed*"])
    # The reason and its log tail once, in the first check; the other four point to it in one line.
    assert result.stdout.str().count("--- last 40 log lines of 'diabetes' ---") == 1
    result.stdout.fnmatch_lines(["*diabetes: swagger: the service did not start: *init() raised RuntimeError: model store offline*"
                                 "(the log tail is in the report of diabetes::health)"])


@pytest.mark.parametrize(
    ("project_name", "check", "expected"),
    [
        ("broken-raises", "properties", ["*500*", "*1000001*", "*curl *"]),
        ("broken-output", "swagger", ["*ServiceOutput*", "*curl *"]),
        ("broken-nan", "swagger", ["*500*", "*not strict JSON*", "*curl *"]),
        ("broken-unconverted", "robustness", ["*500*", "*curl *"]),
    ],
)
def test_a_broken_deployment_fails_its_check_with_a_report(
    pytester: pytest.Pytester, project_name: str, check: str, expected: list[str]
) -> None:
    source = PROJECTS / project_name
    if not source.exists():
        pytest.fail(f"tests/projects/{project_name} is missing")
    project = copy_project(pytester, source)
    result = run(pytester, project, "--mldeploy-target", "process", "-k", check, "--mldeploy-examples", "50")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(expected)
    result.stdout.fnmatch_lines(["*log*"])


def test_fixtures_serve_hand_written_tests(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, EXAMPLE)
    (project / "test_more.py").write_text(textwrap.dedent("""
        def test_swagger_names_the_service(scoring_client):
            assert scoring_client.swagger()["info"]["title"]

        def test_service_has_a_scoring_uri(mldeploy_service):
            assert mldeploy_service.scoring_uri.endswith("/score")
            assert "init()" in mldeploy_service.logs() or mldeploy_service.logs() is not None
    """))
    result = pytester.runpytest_subprocess(str(project / "test_more.py"), "--mldeploy-target", "process",
                                           "--mldeploy-config", str(project / "mldeploy.yaml"), timeout=300)
    result.assert_outcomes(passed=2)


@pytest.mark.docker
def test_example_passes_on_the_docker_target_with_its_profile(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, EXAMPLE)
    config = project / "mldeploy.yaml"
    config.write_text(config.read_text().replace("duration_s: 20", "duration_s: 5\n      max_concurrency: 8"))
    report = pytester.path / "report"
    result = run(pytester, project, "--mldeploy-target", "docker", "--mldeploy-examples", "25", f"--mldeploy-report={report}")
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["*diabetes*docker*Healthy*6/6 passed*mldeploy/diabetes:*cpu *mem * GB*req/s*p95*"])
    profile = json.loads((report / "diabetes" / "profile.json").read_text())
    assert profile["requestedCpu"] > 0 and profile["verification"]["verdict"] in ("verified", "raised", "inconclusive")
    assert (report / "diabetes" / "profile.html").exists()


def test_keep_leaves_the_service_up_until_mldeploy_delete(pytester: pytest.Pytester) -> None:
    import subprocess
    import sys

    import requests

    project = copy_project(pytester, EXAMPLE)
    result = run(pytester, project, "--mldeploy-target", "process", "--mldeploy-keep", "-k", "health",
                 "--ignore", str(project / "test_diabetes_service.py"))
    result.assert_outcomes(passed=1, deselected=5)
    (line,) = [l for l in result.outlines if "kept 'diabetes' running" in l]
    scoring_uri = line.split("scoring_uri: ")[1].split()[0]
    try:
        assert requests.get(scoring_uri.rsplit("/", 1)[0] + "/", timeout=5).text == "Healthy"
    finally:
        deleted = subprocess.run([sys.executable, "-m", "pytest_mldeploy.cli", "delete", "diabetes"], cwd=project,
                                 capture_output=True, text=True, timeout=60)
    assert deleted.returncode == 0, deleted.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(scoring_uri, timeout=2)


def test_last_failed_reruns_only_the_failed_check(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, PROJECTS / "broken-output")
    args = (str(project), "--mldeploy", "--mldeploy-target", "process", "-k", "health or swagger", "-p", "cacheprovider")
    first = pytester.runpytest_subprocess(*args, timeout=300)
    first.assert_outcomes(passed=1, failed=1, deselected=4)
    again = pytester.runpytest_subprocess(*args, "--lf", timeout=300)
    again.assert_outcomes(failed=1, deselected=5)
    again.stdout.fnmatch_lines(["*run-last-failure*", "FAILED *mldeploy.yaml::broken-output::swagger*"])


def test_a_schemaless_json_loads_script_passes_with_warnings(pytester: pytest.Pytester) -> None:
    """The most common Azure pattern, `run(raw)` doing `json.loads(raw)`: its 500s on malformed bodies are
    warnings. They show in pytest's warnings summary and the final table, whose counts agree with pytest's."""
    project = copy_project(pytester, PROJECTS / "broken-rawjson")
    result = run(pytester, project, "--mldeploy-target", "process", *QUICK)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 4 and outcomes.get("skipped") == 1 and "failed" not in outcomes, result.stdout.str()
    assert outcomes.get("warnings", 0) >= 5
    result.stdout.no_fnmatch_line("*AssertionError*")
    result.stdout.no_fnmatch_line("*_pytest*nodes.py*")
    result.stdout.fnmatch_lines([
        "*warnings summary*",
        "*mldeploy.yaml:*: MldeployWarning: broken-rawjson::robustness: not JSON: answered 500*",
        "*= mldeploy =*",
        f"*broken-rawjson*process*Healthy*4/5 passed, 1 skipped, {outcomes['warnings']} warnings (robustness)*",
    ])


def test_the_table_takes_pytests_verdict_when_a_warning_is_made_an_error(pytester: pytest.Pytester) -> None:
    """`-W error::...MldeployWarning` fails the item in pytest; the table must say failed too, not passed."""
    project = copy_project(pytester, PROJECTS / "broken-rawjson")
    result = run(pytester, project, "--mldeploy-target", "process", "-k", "health or robustness",
                 "-W", "error::pytest_mldeploy.plugin.MldeployWarning")
    result.assert_outcomes(passed=1, failed=1, deselected=4)
    result.stdout.fnmatch_lines(["*broken-rawjson*Healthy*1/2 passed (failed: robustness)*"])


def test_no_unknown_mark_warning_without_xdist(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, EXAMPLE)
    result = pytester.runpytest_subprocess(str(project / "mldeploy.yaml"), "--mldeploy", "--collect-only", "-q",
                                           "-p", "no:xdist", "-W", "error::pytest.PytestUnknownMarkWarning")
    assert result.ret == 0, result.stdout.str()
    result.stdout.no_fnmatch_line("*PytestUnknownMarkWarning*")
    result.stdout.fnmatch_lines(["*mldeploy.yaml::diabetes::health"])


def test_a_service_killed_by_a_request_names_the_signal_first(pytester: pytest.Pytester) -> None:
    """run() SIGKILLs its own server on a value over 1000: properties says so first (not "got no answer" with a
    shrunk "minimal failing request"), and the checks after it fail at once, pointing to it."""
    project = copy_project(pytester, PROJECTS / "dies")
    result = run(pytester, project, "--mldeploy-target", "process", "--mldeploy-deployment", "dies-kill", *QUICK,
                 "-p", "no:randomly", "--mldeploy-examples", "30")
    result.assert_outcomes(passed=2, failed=3, deselected=1)
    result.stdout.fnmatch_lines([
        "*[[]properties[]] the service died while answering POST http://127.0.0.1:*/score: "
        "the server was killed by SIGKILL (exit code -9) after a healthy start",
        "*service log (last 20 lines):",
        "*dying by kill",
    ])
    result.stdout.fnmatch_lines(["*the service died during the properties check (the server was killed by SIGKILL*"
                                 "see the report of dies-kill::properties*"])
    result.stdout.no_fnmatch_line("*minimal failing request*")
    result.stdout.no_fnmatch_line("*keep it up for the curl line*")
    result.stdout.fnmatch_lines(["*dies-kill*process*Failed*2/5 passed (failed: properties, robustness, samples)*"])


@pytest.mark.docker
def test_the_base_image_fallback_notice_is_said_once_per_run() -> None:
    """Each deployment's build asks for the base image; the notice that it falls back to the offline one is said once."""
    import subprocess
    import sys

    script = (
        "from pytest_mldeploy.core.base_image import ensure_base_image\n"
        "for _ in range(3):\n"
        "    ensure_base_image(progress=print)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "cannot be pulled" in line]
    assert len(lines) == 1, done.stdout


def test_a_check_warning_points_at_its_deployments_key(tmp_path: Path) -> None:
    from pytest_mldeploy.config_files import deployment_line as _deployment_line

    config = tmp_path / "mldeploy.yaml"
    config.write_text(textwrap.dedent("""\
        defaults:
          profile:            # not a deployment
            duration_s: 5
        deployments:
          # the first one
          first:
            entry_script: score.py
            profile: {duration_s: 5}
          profile:
            entry_script: score.py
        """))
    assert _deployment_line(config, "first") == 5
    assert _deployment_line(config, "profile") == 8
    assert _deployment_line(config, "missing") == 0
