"""`mldeploy parity` against the two real servers (process target): the example differs only as
documented; a planted difference is reported as unknown and fails. Plus the known table's units."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pytest_mldeploy.checks.parity import Answer, ParityRequest, compare, json_equal, run_parity
from pytest_mldeploy.checks.parity_known import KNOWN
from pytest_mldeploy.cli import main
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.core.targets.process import ProcessTarget

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"

PLANTED = '''
import os
import joblib
import numpy as np
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


@input_schema("data", NumpyParameterType(np.array([[0.1, 1.2, 2.3, 3.4, 4.5, 5.6, 6.7, 7.8, 8.9, 9.0]])))
@output_schema(NumpyParameterType(np.array([4429.929236457418])))
def run(data):
    # Planted: Azure's server sets HTTP_X_MS_SERVER_VERSION, ours does not; the answers then differ.
    shift = 1.0 if os.environ.get("HTTP_X_MS_SERVER_VERSION", "").startswith("azmlinfsrv") else 0.0
    return (model.predict(data) + shift).tolist()
'''


# ---- units --------------------------------------------------------------------------------------


def test_json_equal_tolerates_float_noise_but_not_values() -> None:
    assert json_equal([4952.810000000001], [4952.81])
    assert not json_equal([4952.81], [4953.81])
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal([True], [1])


def test_a_documented_status_pair_is_known_and_another_is_not() -> None:
    request = ParityRequest("schema-rejected", "data: empty array", b'{"data": []}')
    ours = Answer(400, b'{"message": "Invalid value for the \'data\' parameter: /data must have at least 1 item, not 0"}')
    azure = Answer(500, b'{"message": "An unexpected error occurred in scoring script. Check the logs for more info."}')
    difference = compare(request, ours, azure)
    assert difference is not None and difference.known is not None and difference.known.id == "schema-400-vs-500"
    # The same statuses for a schema-valid request are not documented.
    generated = compare(ParityRequest("generated", "generated request 1", b"{}"), ours, azure)
    assert generated is not None and generated.known is None
    # Equal answers are no difference at all.
    assert compare(request, ours, ours) is None


def test_every_known_difference_is_documented_in_server_md() -> None:
    text = (REPO / "docs" / "server.md").read_text()
    section = text.split("## Parity with Azure's server", 1)
    assert len(section) == 2, "docs/server.md has no '## Parity with Azure's server' section"
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section[1], flags=re.M))
    assert documented == {known.id for known in KNOWN}


# ---- real servers -------------------------------------------------------------------------------


def test_example_differs_only_as_documented(tmp_path) -> None:
    project = load_project(EXAMPLE / "mldeploy.yaml")
    report = run_parity(project.deployments["diabetes"], project, ProcessTarget(),
                        registry=Registry(tmp_path / "registry"), examples=10, seed=0)
    assert report.sent > 30
    assert report.unknown == [], [(d.request.label, d.aspects, d.ours.shown(), d.azure.shown()) for d in report.unknown]
    known = {d.known.id for d in report.differences}
    assert "schema-400-vs-500" in known  # Azure's documented 500 for schema-rejected input is seen and classified


def test_planted_difference_is_unknown_and_the_command_fails(tmp_path, capsys) -> None:
    project_dir = tmp_path / "planted"
    shutil.copytree(EXAMPLE, project_dir, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    (project_dir / "score.py").write_text(PLANTED)
    code = main(["parity", "diabetes", "--config", str(project_dir / "mldeploy.yaml"), "--target", "process",
                 "--examples", "5"])
    out = capsys.readouterr().out
    assert code == 1, out
    unknown = [line for line in out.splitlines() if "UNKNOWN difference" in line]
    assert unknown and all(("[sample]" in line or "[generated]" in line) and ": body" in line for line in unknown), out
    assert "FAILED:" in out and "known: schema-400-vs-500" in out


# ---- the checks judge Azure's server by its own contract ------------------------------------------


@pytest.fixture(scope="module")
def azure_example(tmp_path_factory):
    project = load_project(EXAMPLE / "mldeploy.yaml")
    deployment = project.deployments["diabetes"].model_copy(update={"server": "azureml"})
    service = ProcessTarget().deploy(deployment, project, registry=Registry(tmp_path_factory.mktemp("registry")))
    yield project, deployment, service
    service.delete()


def _context(project, deployment, service):
    from pytest_mldeploy.checks.base import CheckContext
    from pytest_mldeploy.client import ScoringClient

    return CheckContext(project, deployment, service, ScoringClient.from_service(service), examples=10, seed=0)


def test_robustness_on_azures_server_warns_about_its_documented_500s(azure_example) -> None:
    from pytest_mldeploy.checks.robustness import check_robustness

    project, deployment, service = azure_example
    result = check_robustness(_context(project, deployment, service))
    assert result.passed, result.report
    assert any("Azure's inference server (server: azureml) answers 500" in w for w in result.warnings), result.warnings
    # The same answers judged as our server's would be failures: the warning depends on the server setting.
    ours = deployment.model_copy(update={"server": "mldeploy"})
    assert not check_robustness(_context(project, ours, service)).passed


def test_properties_pass_on_azures_server(azure_example) -> None:
    from pytest_mldeploy.checks.properties import check_properties

    project, deployment, service = azure_example
    result = check_properties(_context(project, deployment, service))
    assert result.passed, result.report


def test_azures_loose_service_input_is_tightened_from_its_example() -> None:
    from jsonschema import Draft4Validator

    from pytest_mldeploy.checks.azure_contract import tightened_input_schema

    document = {"definitions": {"ServiceInput": {
        "type": "object",
        "properties": {"data": {"type": "array", "format": "numpy.ndarray",
                                "items": {"type": "array", "items": {"type": "number", "format": "double"}}}},
        "example": {"data": [[0.1, 1.2, 2.3]]}}}}
    schema = tightened_input_schema(document)
    valid = Draft4Validator(schema).is_valid
    assert valid({"data": [[1, 2, 3], [4, 5, 6]]})
    assert not valid({}) and not valid({"data": []}) and not valid({"data": [[1, 2]]})


def test_nan_from_run_is_the_documented_difference() -> None:
    request = ParityRequest("sample", "requests.txt line 1", b'{"data": [[1,2,3,4,5,6,7,8,9,10]]}')
    ours = Answer(500, b'{"message": "The scoring script\'s output cannot be sent as JSON: run() returned a float NaN (...)."}')
    azure = Answer(200, b"[NaN]")
    difference = compare(request, ours, azure)
    assert difference is not None and difference.known is not None and difference.known.id == "nan-output-500-vs-200"
