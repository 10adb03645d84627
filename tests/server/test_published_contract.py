"""What the server publishes is what it enforces, on Azure's common inference_schema shapes.

Each script is served by a real server process. A request one change away from the documented
example (the robustness check's own mutations) is answered 400 exactly when the served
`ServiceInput` rejects it, and 200 when it accepts it; the documents stay valid Swagger 2.0 and
OpenAPI 3.0. `test_builtin_checks_pass` runs the swagger, properties and robustness checks
themselves on each script deployed with the process target.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import requests
import pytest
from openapi_spec_validator import OpenAPIV2SpecValidator, OpenAPIV30SpecValidator

from pytest_mldeploy.checks.robustness import mutations
from pytest_mldeploy.checks.published_contract import input_schema

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
MODEL_NAME = "sklearn_regression_model"
MODEL_FILE = f"{MODEL_NAME}.pkl"

SHAPES = ["numpy_free_shape.py", "pandas_records.py", "dict_typed.py", "nested_inputs.py"]
PANDAS_SHAPES = {"pandas_records.py", "nested_inputs.py"}


def _needs(script: str) -> None:
    if script in PANDAS_SHAPES:
        pytest.importorskip("pandas")


@pytest.fixture(scope="module", params=SHAPES)
def shape(request, module_servers, module_app):
    _needs(request.param)
    server = module_servers(module_app(request.param))
    document = server.get("/swagger.json").json()
    return request.param, server, document


def _client_error(response) -> bool:
    return (response.status_code == 400 and response.headers["x-ms-run-function-failed"] == "False"
            and isinstance(response.json().get("message"), str))


def test_documents_are_valid_swagger_and_openapi(shape) -> None:
    _, server, document = shape
    OpenAPIV2SpecValidator(document).validate()
    OpenAPIV30SpecValidator(server.get("/swagger.json", params={"version": "3"}).json()).validate()


def test_every_mutation_is_400_exactly_when_the_published_schema_rejects_it(shape) -> None:
    name, server, document = shape
    schema = input_schema(document)
    example = document["definitions"]["ServiceInput"]["example"]
    checker = jsonschema.Draft4Validator(schema)
    checker.validate(example)
    response = server.post("/score", json=example)
    assert response.status_code == 200, (response.text, server.log())
    tried = rejected = 0
    for label, mutated in mutations(example):
        tried += 1
        response = server.post("/score", data=json.dumps(mutated), headers={"Content-Type": "application/json"})
        if checker.is_valid(mutated):
            assert response.status_code == 200, (name, label, response.text, server.log()[-2000:])
        else:
            rejected += 1
            assert _client_error(response), (name, label, response.status_code, response.text, server.log()[-2000:])
    assert tried > 10 and rejected > 5


# ---- the cases the issue names, one by one (each a 500 or a 200 before) ---------------------------

NUMPY_ROW = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.01]


@pytest.fixture(scope="module")
def numpy_free(module_servers, module_app):
    return module_servers(module_app("numpy_free_shape.py"))


@pytest.mark.parametrize("data, message", [
    ([[[x] for x in NUMPY_ROW]], "Invalid value for the 'data' parameter: /data/0/0 must be a number, not an array"),
    ([], "Invalid value for the 'data' parameter: /data must have at least 1 item, not 0"),
    ([NUMPY_ROW[:3]], "Invalid value for the 'data' parameter: /data/0 must have exactly 10 items, not 3"),
    ([NUMPY_ROW, NUMPY_ROW[:9]], "Invalid value for the 'data' parameter: /data/1 must have exactly 10 items, not 9"),
    ([[False] + NUMPY_ROW[1:]], "Invalid value for the 'data' parameter: /data/0/0 must be a number, not a boolean"),
])
def test_numpy_without_enforce_shape_rejects_what_it_publishes(numpy_free, data, message) -> None:
    response = numpy_free.post("/score", json={"data": data})
    assert _client_error(response) and response.json()["message"] == message
    assert numpy_free.post("/score", json={"data": [NUMPY_ROW] * 3}).status_code == 200


def test_numpy_without_enforce_shape_publishes_the_widths(numpy_free) -> None:
    data = numpy_free.get("/swagger.json").json()["definitions"]["ServiceInput"]["properties"]["data"]
    assert data["minItems"] == 1 and "maxItems" not in data
    assert data["items"]["minItems"] == data["items"]["maxItems"] == 10
    assert data["items"]["items"]["type"] == "number"


@pytest.fixture(scope="module")
def pandas_service(module_servers, module_app):
    pytest.importorskip("pandas")
    return module_servers(module_app("pandas_records.py"))


PANDAS_ROW = {"AGE": 50, "SEX": 1, "BMI": 0.06, "BP": 0.02, "S1": -0.04, "S2": -0.03, "S3": -0.04, "S4": 0.0,
              "S5": 0.02, "S6": -0.01}


@pytest.mark.parametrize("rows, message", [
    ([{k: v for k, v in PANDAS_ROW.items() if k != "BMI"}], "/data/0/BMI is required but missing"),
    ([dict(PANDAS_ROW, BMI=None)], "/data/0/BMI must be a number, not null"),
    ([dict(PANDAS_ROW, AGE="fifty")], "/data/0/AGE must be an integer, not a string"),
    ([dict(PANDAS_ROW, AGE=50.5)], "/data/0/AGE must be an integer, not a number"),
    ([dict(PANDAS_ROW, EXTRA=1)], "/data/0/EXTRA is not an allowed property"),
    ([], "/data must have at least 1 item, not 0"),
])
def test_pandas_rejects_missing_columns_nulls_and_empty_frames(pandas_service, rows, message) -> None:
    response = pandas_service.post("/score", json={"data": rows})
    assert _client_error(response), (response.status_code, response.text)
    assert response.json()["message"].startswith(f"Invalid value for the 'data' parameter: {message}")
    ok = pandas_service.post("/score", json={"data": [PANDAS_ROW, dict(PANDAS_ROW, AGE=60)]})
    assert ok.status_code == 200 and len(ok.json()) == 2


@pytest.fixture(scope="module")
def dict_service(module_servers, module_app):
    return module_servers(module_app("dict_typed.py"))


PATIENT = {"age": 50, "sex": 1, "bmi": 0.06, "bp": 0.02, "s1": -0.04, "s2": -0.03, "s3": -0.04, "s4": 0.0,
           "s5": 0.02, "s6": -0.01, "unit": "mg/dl"}


@pytest.mark.parametrize("patient, message", [
    ({k: v for k, v in PATIENT.items() if k != "bmi"}, "/patient/bmi is required but missing"),
    (dict(PATIENT, age="50"), "/patient/age must be an integer, not a string"),
    (dict(PATIENT, sex=True), "/patient/sex must be an integer, not a boolean"),
    (dict(PATIENT, bmi=False), "/patient/bmi must be a number, not a boolean"),
    (dict(PATIENT, unit=3), "/patient/unit must be a string, not an integer"),
])
def test_python_dict_enforces_its_required_keys_and_types(dict_service, patient, message) -> None:
    response = dict_service.post("/score", json={"patient": patient})
    assert _client_error(response), (response.status_code, response.text)
    assert response.json()["message"] == f"Invalid value for the 'patient' parameter: {message}"
    assert dict_service.post("/score", json={"patient": dict(PATIENT, bmi=1)}).status_code == 200


def test_nested_inputs_and_global_parameters(module_servers, module_app) -> None:
    pytest.importorskip("pandas")
    server = module_servers(module_app("nested_inputs.py"))
    document = server.get("/swagger.json").json()
    body = document["definitions"]["ServiceInput"]
    assert body["required"] == ["Inputs", "GlobalParameters"]
    inputs = body["properties"]["Inputs"]["properties"]
    assert inputs["input1"]["items"]["maxItems"] == 10 and inputs["input2"]["minItems"] == 1
    response = server.post("/score", json=body["example"])
    assert response.status_code == 200, server.log()
    assert response.json()["People"] == ["Sarah", "John"]
    bad = json.loads(json.dumps(body["example"]))
    bad["Inputs"]["input2"][1]["age"] = None
    response = server.post("/score", json=bad)
    assert response.json()["message"] == (
        "Invalid value for the 'Inputs' parameter: /Inputs/input2/1/age must be an integer, not null")
    bad["Inputs"]["input2"] = []
    assert server.post("/score", json=bad).json()["message"].endswith("/Inputs/input2 must have at least 1 item, not 0")


def test_get_query_is_validated_like_the_body(numpy_free) -> None:
    response = numpy_free.get("/score", params={"data": json.dumps([[True] * 10])})
    assert _client_error(response)
    assert response.json()["message"] == "Invalid value for the 'data' parameter: /data/0/0 must be a number, not a boolean"
    assert numpy_free.get("/score", params={"data": json.dumps([NUMPY_ROW])}).status_code == 200


# ---- the built-in checks themselves, on each shape --------------------------------------------------


def _project(tmp_path: Path, script: str) -> Path:
    root = tmp_path / Path(script).stem
    (root / "models").mkdir(parents=True)
    shutil.copy(SCRIPTS / script, root / "score.py")
    shutil.copy(EXAMPLE / "models" / MODEL_FILE, root / "models" / MODEL_FILE)
    pip = ["scikit-learn==1.9.1", "joblib", "inference-schema"] + (["pandas"] if script in PANDAS_SHAPES else [])
    (root / "mldeploy.yaml").write_text(json.dumps({"deployments": {root.name.replace("_", "-"): {
        "models": [{"name": MODEL_NAME, "path": f"models/{MODEL_FILE}"}],
        "entry_script": "score.py",
        "environment": {"pip": pip},
        "max_body_bytes": 1_000_000,
    }}}))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("script", SHAPES)
def test_builtin_checks_pass(tmp_path: Path, script: str) -> None:
    """No false alarms: swagger, properties and robustness pass on each correct script."""
    _needs(script)
    from pytest_mldeploy.checks.base import CheckContext, Outcome
    from pytest_mldeploy.client import ScoringClient
    from pytest_mldeploy.checks.properties import check_properties
    from pytest_mldeploy.checks.robustness import check_robustness
    from pytest_mldeploy.checks.swagger_check import check_swagger
    from pytest_mldeploy.core.config import load_project
    from pytest_mldeploy.core.registry import Registry
    from pytest_mldeploy.core.targets import get_target

    project = load_project(_project(tmp_path, script) / "mldeploy.yaml")
    (deployment,) = project.deployments.values()
    target = get_target("process")
    service = target.deploy(deployment, project, registry=Registry(tmp_path / "registry"))
    try:
        ctx = CheckContext(project=project, deployment=deployment, service=service,
                           client=ScoringClient.from_service(service), target=target, examples=40,
                           report_dir=tmp_path / "report", seed=1)
        for check in (check_swagger, check_properties, check_robustness):
            result = check(ctx)
            assert result.outcome is Outcome.PASSED, f"{script}: {result.name}: {result.summary}\n{result.report}"
            if check is check_robustness:
                assert not result.warnings, result.warnings
                assert result.figures["requests"] > 15
    finally:
        service.delete()


def test_get_query_nested_too_deeply_is_400_like_post(numpy_free) -> None:
    nested = "[" * 1_300 + "]" * 1_300  # past json's recursion limit; as %5B%5D, inside the 8190-byte request line limit
    got = requests.get(f"{numpy_free.url}/score?data={nested}", timeout=30)
    assert _client_error(got), (got.status_code, got.text)
    assert got.json()["message"] == "The query value of 'data' could not be decoded as JSON: it is nested too deeply"
    posted = numpy_free.post("/score", data=f'{{"data": {nested}}}', headers={"Content-Type": "application/json"})
    assert _client_error(posted) and "nested too deeply" in posted.json()["message"]


def test_unconverted_parameters_reach_run_raw_as_on_azure(module_servers, module_app) -> None:
    """run() owns parameters declared with convert_to_provided_type=False; the others are still enforced."""
    server = module_servers(module_app("unconverted.py"))
    data = server.get("/swagger.json").json()["definitions"]["ServiceInput"]["properties"]["data"]
    assert data["items"]["maxItems"] == 2  # published all the same: the robustness check holds run() to it
    response = server.post("/score", json={"data": "text"})
    assert response.status_code == 200 and response.json() == {"type": "str", "data": "text", "scale": 1}
    response = server.post("/score", json={"data": [[1, 2]], "scale": "2"})
    assert _client_error(response)
    assert response.json()["message"] == "Invalid value for the 'scale' parameter: /scale must be an integer, not a string"
