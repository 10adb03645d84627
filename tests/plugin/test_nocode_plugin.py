"""No-code deployments through `pytest --mldeploy`: the MLflow and ONNX examples, scikit-learn
pickles and an MLflow pyfunc model pass; each planted fault fails with its reason."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_projects"
PROJECTS = REPO / "tests" / "projects"
QUICK = ["-k", "not profile", "--mldeploy-examples", "25"]

pytestmark = pytest.mark.slow


def copy_project(pytester: pytest.Pytester, source: Path) -> Path:
    target = pytester.path / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__", "mldeploy-report"))
    return target


def run(pytester: pytest.Pytester, project: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(str(project), "--mldeploy", "-p", "no:cacheprovider", *args, timeout=900)


@pytest.mark.parametrize(
    ("source", "passed", "row"),
    [
        (EXAMPLES / "mlflow-diabetes", 9, "*mlflow-diabetes*process*Healthy*5/5 passed*"),  # 5 checks + 4 tests
        (EXAMPLES / "onnx-iris", 8, "*iris*process*Healthy*5/5 passed*"),  # 5 checks + 3 tests
        (PROJECTS / "nocode-mlflow-pyfunc", 4, "*nocode-pyfunc*process*Healthy*4/5 passed, 1 skipped*"),  # no samples file
        (PROJECTS / "nocode-mlflow-mixed", 4, "*nocode-mixed*process*Healthy*4/5 passed, 1 skipped*"),
    ],
    ids=["mlflow-example", "onnx-example", "mlflow-pyfunc", "mlflow-mixed-columns"],
)
def test_no_code_deployments_pass_on_the_process_target(pytester: pytest.Pytester, source: Path, passed: int, row: str) -> None:
    project = copy_project(pytester, source)
    result = run(pytester, project, "--mldeploy-target", "process", *QUICK)
    result.assert_outcomes(passed=passed, skipped=0 if source.parent == EXAMPLES else 1, deselected=1)
    result.stdout.fnmatch_lines(["*= mldeploy =*", row])


def test_scikit_learn_pickles_pass_with_predict_and_predict_proba(pytester: pytest.Pytester) -> None:
    project = copy_project(pytester, PROJECTS / "nocode-sklearn")
    result = run(pytester, project, "--mldeploy-target", "process", *QUICK)
    result.assert_outcomes(passed=8, skipped=2, deselected=2)  # 4 checks each; no samples file
    result.stdout.fnmatch_lines(["*sk-diabetes*process*Healthy*4/5 passed, 1 skipped*"])
    result.stdout.fnmatch_lines(["*sk-iris-proba*process*Healthy*4/5 passed, 1 skipped*"])


@pytest.mark.parametrize(
    ("name", "failed", "reason"),
    [
        ("nocode-mlflow-badsig", 5,
         "*its signature does not fit the model*X has 3 features, but Ridge is expecting 10 features as input*"),
        ("nocode-sklearn-oldpickle", 5,
         "*old.pkl was pickled with scikit-learn 0.24.2 but the service has 1.9.1*"),
        ("nocode-onnx-nan", 2,
         "*the ONNX graph's output 'y' holds nan, which JSON cannot carry*"),
    ],
)
def test_planted_faults_fail_with_their_reason(pytester: pytest.Pytester, name: str, failed: int, reason: str) -> None:
    project = copy_project(pytester, PROJECTS / name)
    result = run(pytester, project, "--mldeploy-target", "process", *QUICK, "-p", "no:randomly")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == failed, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines([reason])
    if name == "nocode-onnx-nan":
        # The service starts; the documented example and every generated request get a 500 with the reason logged.
        result.stdout.fnmatch_lines(["*nocode-onnx-nan::swagger*", "*answered 500*"])
        result.stdout.fnmatch_lines(["*answered 500 for a request ServiceInput accepts*"])
    else:
        result.stdout.fnmatch_lines(["*Failed*0/5 passed*"])


@pytest.mark.docker
@pytest.mark.parametrize(
    ("source", "deployment", "passed", "row"),
    [
        (EXAMPLES / "mlflow-diabetes", "mlflow-diabetes", 9, "*mlflow-diabetes*docker*Healthy*5/5 passed*"),
        (EXAMPLES / "onnx-iris", "iris", 8, "*iris*docker*Healthy*5/5 passed*"),
        (PROJECTS / "nocode-sklearn", "sk-iris-proba", 4, "*sk-iris-proba*docker*Healthy*4/5 passed, 1 skipped*"),
    ],
    ids=["mlflow-example", "onnx-example", "sklearn-pickle"],
)
def test_no_code_deployments_pass_on_the_docker_target(
    pytester: pytest.Pytester, source: Path, deployment: str, passed: int, row: str
) -> None:
    project = copy_project(pytester, source)
    result = run(pytester, project, "--mldeploy-target", "docker", "--mldeploy-deployment", deployment, *QUICK)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == passed and not outcomes.get("failed"), result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines([row])


@pytest.mark.docker
def test_a_planted_fault_fails_with_its_reason_on_docker(pytester: pytest.Pytester) -> None:
    # One fault on Docker (the smallest image); the start failures of the other two are the
    # server's exit code 3, which the Docker target reports like any init() failure (test_docker_target).
    project = copy_project(pytester, PROJECTS / "nocode-onnx-nan")
    result = run(pytester, project, "--mldeploy-target", "docker", *QUICK, "-p", "no:randomly")
    assert result.parseoutcomes().get("failed") == 2, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*the ONNX graph's output 'y' holds nan, which JSON cannot carry*"])
