"""Pure logic of the comparison: answer tolerance, the API diff, input sensitivity, settings, renderers."""
from __future__ import annotations

import json
import math

import pytest

from pytest_mldeploy.compare.answers import Answer, AnswersResult, compare_values, row_diffs
from pytest_mldeploy.compare.contract_diff import diff_contracts
from pytest_mldeploy.compare.markdown import render_markdown
from pytest_mldeploy.compare.requests import CompareRequest, derived_variants, found_request_files, input_rows, read_found
from pytest_mldeploy.compare.sensitivity import judge_sensitivity
from pytest_mldeploy.compare.summary import format_summary
from pytest_mldeploy.core.compare_spec import AnswersSpec
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.errors import ConfigError

SPEC = AnswersSpec(atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("a, b, differs", [
    (1.0, 1.0 + 1e-7, False),           # within atol
    (1e6, 1e6 + 5.0, False),             # within rtol x |baseline|
    (1e6, 1e6 + 50.0, True),
    (float("nan"), float("nan"), False),  # NaN agrees with NaN only
    (float("nan"), 1.0, True),
    ([1.0, 2.0], [1.0, 2.0, 3.0], True),  # another shape
    ({"p": 0.1}, {"q": 0.1}, True),
    ("cat", "cat", False),
])
def test_compare_values_tolerance(a, b, differs) -> None:
    _label, _abs, _rel, score = compare_values(a, b, SPEC)
    assert (score > 1.0) is differs


def test_labels_flip_and_numbers_do_not_count_as_labels() -> None:
    assert compare_values("cat", "dog", SPEC)[0] is True
    assert compare_values(3, 4, SPEC)[0] is True
    assert compare_values(3, 4, SPEC)[3] == math.inf
    assert compare_values(0.5, 0.6, SPEC)[0] is False


def test_rows_of_a_batch_are_compared_one_by_one_with_their_input() -> None:
    request = CompareRequest("sample", "req", json.dumps({"data": [[1, 2], [3, 4]]}).encode())
    rows = row_diffs(request, Answer(200, [10.0, 20.0], True), Answer(200, [10.0, 25.0], True), SPEC)
    assert [r.differs for r in rows] == [False, True]
    assert rows[1].input == [3, 4] and rows[1].max_abs == 5.0 and rows[1].row == 1


def test_no_request_sent_fails_the_answers_gate_and_names_the_fix() -> None:
    # Azure's v2 sample has no input schema and v2 files have no profile.requests: nothing is sent.
    empty = AnswersResult(SPEC)
    assert not empty.passed
    assert "--requests" in empty.problems()[0] and "profile.requests" in empty.problems()[0]
    one = AnswersResult(SPEC, sent=1)
    assert one.passed


def test_input_rows_finds_the_one_list_of_the_right_length() -> None:
    assert input_rows({"data": [[1], [2]], "id": "x"}, 2) == [[1], [2]]
    assert input_rows({"a": [1, 2], "b": [3, 4]}, 2) is None


def _swagger(input_props: dict, required=None, output: dict | None = None) -> dict:
    service_input = {"type": "object", "properties": input_props}
    if required:
        service_input["required"] = required
    return {"swagger": "2.0", "definitions": {"ServiceInput": service_input,
                                              "ServiceOutput": output or {"type": "array", "items": {"type": "number"}}}}


MATRIX = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}


def test_renamed_parameter_is_breaking() -> None:
    diff = diff_contracts(_swagger({"data": MATRIX}), _swagger({"features": MATRIX}))
    assert not diff.passed
    assert diff.breaking == ["input.data: parameter renamed to 'features'"]


def test_narrowed_type_and_bounds_are_breaking_widened_are_additions() -> None:
    old = _swagger({"x": {"type": "number", "minimum": 0, "maximum": 10}, "k": {"type": "string", "enum": ["a", "b"]}})
    new = _swagger({"x": {"type": "integer", "minimum": 1, "maximum": 10}, "k": {"type": "string", "enum": ["a"]}})
    diff = diff_contracts(old, new)
    assert "input.x: type narrowed from number to integer" in diff.breaking
    assert any(line.startswith("input.k: enum narrowed") for line in diff.breaking)
    wider = diff_contracts(new, _swagger({"x": {"type": "number", "minimum": 0}, "k": {"type": "string"}, "extra": {"type": "string"}}))
    assert wider.passed, wider.breaking
    assert "input.extra: new optional parameter" in wider.additions
    assert "input.x: bound maximum 10 removed" in wider.additions


def test_changed_output_type_and_new_required_parameter_are_breaking() -> None:
    diff = diff_contracts(_swagger({"data": MATRIX}), _swagger({"data": MATRIX, "id": {"type": "string"}}, required=["id"],
                                                               output={"type": "object", "properties": {"y": {"type": "number"}}}))
    assert "input.id: new required parameter" in diff.breaking
    assert "output: output type changed from array to object" in diff.breaking


def test_a_schema_where_the_baseline_had_none_is_listed_not_failed() -> None:
    free = {"swagger": "2.0", "definitions": {"ServiceInput": {"type": "object"}}}
    diff = diff_contracts(free, _swagger({"data": MATRIX}))
    assert diff.passed and diff.additions[0].startswith("input: the candidate declares a schema")


def test_identical_contracts_pass_with_nothing_listed() -> None:
    diff = diff_contracts(_swagger({"data": MATRIX}), _swagger({"data": MATRIX}))
    assert diff.passed and not diff.additions


def _pairs(baseline: list, candidate: list):
    return [(CompareRequest("sample", f"r{i}", json.dumps({"data": [[i]]}).encode()), Answer(200, a, True), Answer(200, b, True))
            for i, (a, b) in enumerate(zip(baseline, candidate))]


def test_constant_candidate_is_called_out() -> None:
    judged = judge_sensitivity(_pairs([[1.0], [2.0], [3.0]], [[0.5, 0.5]] * 3))
    assert judged.constant and not judged.passed
    assert "[0.5, 0.5]" in judged.message()


def test_both_constant_or_too_few_inputs_is_not_called_out() -> None:
    assert not judge_sensitivity(_pairs([[1.0]] * 3, [[1.0]] * 3)).constant
    assert not judge_sensitivity(_pairs([[1.0], [2.0]], [[0.5], [0.5]])).constant
    assert judge_sensitivity(_pairs([[1.0], [2.0], [3.0]], [[0.5]] * 3), fail_on_constant=False).passed


def test_derived_variants_are_seeded_scaled_copies_that_keep_booleans_and_strings() -> None:
    sample = CompareRequest("sample", "sample-request.json", json.dumps({"data": [[1.0, 10], [2.0, -4]], "flag": True, "unit": "mg"}).encode())
    generated = CompareRequest("generated", "generated request 1", b'{"data": [[3.0, 1]]}')
    variants = derived_variants([sample, generated], count=8, seed=7)
    assert variants == derived_variants([sample, generated], count=8, seed=7)  # the same every run
    assert variants != derived_variants([sample, generated], count=8, seed=8)
    assert len(variants) == 8 and all(v.kind == "derived" and v.label.startswith("sample-request.json (variant") for v in variants)
    assert len({v.body for v in variants}) == 8 and sample.body not in {v.body for v in variants}
    many = [CompareRequest("sample", f"line {i}", json.dumps({"data": [[float(i + 1)]]}).encode()) for i in range(100)]
    assert [v.label for v in derived_variants(many, count=8, seed=0)][:2] == ["line 0 (variant 1)", "line 1 (variant 2)"]
    assert len(derived_variants(many, count=8, seed=0)) == 8  # a long sample file costs no more
    for variant in variants:
        body = variant.json_body()
        assert body["flag"] is True and body["unit"] == "mg"
        for row, original in zip(body["data"], [[1.0, 10], [2.0, -4]]):
            assert isinstance(row[1], int)
            for value, before in zip(row, original):
                assert 0.5 * abs(before) - 1 <= abs(value) <= 1.5 * abs(before) + 1 and (value == 0 or (value > 0) == (before > 0))
            assert 0.5 <= row[0] / original[0] <= 1.5


def test_derived_variants_make_one_sample_request_enough_to_call_a_constant_candidate_out() -> None:
    sample = CompareRequest("sample", "s", b'{"data": [[1.0, 2.0]]}')
    requests = [sample, *derived_variants([sample], count=8, seed=0)]
    varied = [(r, Answer(200, [sum(r.json_body()["data"][0])], True), Answer(200, [0.5], True)) for r in requests]
    judged = judge_sensitivity(varied)
    assert judged.constant and judged.derived == 8 and "8 of them derived" in judged.message()
    both_constant = [(r, Answer(200, [1.0], True), Answer(200, [0.5], True)) for r in requests]
    assert not judge_sensitivity(both_constant).constant
    refused = [(r, Answer(422, "bad", False), Answer(200, [0.5], True)) for r in requests[1:]]
    assert judge_sensitivity(varied[:1] + refused).inputs == 1  # counted only where both answer 2xx


def test_azure_request_files_are_found_beside_the_code_inside_the_project_only(tmp_path) -> None:
    from types import SimpleNamespace

    code = tmp_path / "model-1" / "onlinescoring"
    code.mkdir(parents=True)
    (tmp_path / "model-1" / "sample-request.json").write_text('{"data": [[1, 2]]}')
    (code / "sample_request_2.json").write_text('{"data": [[3, 4]]}')
    (tmp_path / "sample-request.json").write_text('{"data": [[5, 6]]}')  # two levels up: not looked at
    deployment = SimpleNamespace(source_directory=code, profile=SimpleNamespace(requests=None))
    found = found_request_files(deployment, tmp_path)
    assert found == [code / "sample_request_2.json", tmp_path / "model-1" / "sample-request.json"]
    assert [r.label for r in read_found(found, tmp_path)] == ["model-1/onlinescoring/sample_request_2.json", "model-1/sample-request.json"]
    assert found_request_files(deployment, tmp_path / "model-1" / "onlinescoring") == [code / "sample_request_2.json"]
    named = SimpleNamespace(source_directory=code, profile=SimpleNamespace(requests=tmp_path / "sample-request.json"))
    assert found_request_files(named, tmp_path) == []


def test_compare_settings_have_defaults_and_refuse_unknown_keys(tmp_path) -> None:
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    (tmp_path / "mldeploy.yaml").write_text("deployments:\n  d: {entry_script: score.py}\n")
    assert load_project(tmp_path).compare.answers.rtol == 1e-5
    (tmp_path / "mldeploy.yaml").write_text("deployments:\n  d: {entry_script: score.py}\ncompare:\n  answers: {rtol: 0.01}\n"
                                            "  speed: {rounds: 8}\n")
    project = load_project(tmp_path)
    assert project.compare.answers.rtol == 0.01 and project.compare.speed.rounds == 8
    (tmp_path / "mldeploy.yaml").write_text("deployments:\n  d: {entry_script: score.py}\ncompare:\n  answers: {rtoll: 0.01}\n")
    with pytest.raises(ConfigError, match="rtoll"):
        load_project(tmp_path)


def _result_dict(passed: bool) -> dict:
    side = {"spec": "blue", "kind": "v2", "deployment": "blue", "config": "blue-deployment.yml", "revision": None, "image": None}
    figures = {"p50_ms": 1.0, "p95_ms": 2.0, "qps": 100.0, "error_rate": 0.0, "requests": 10, "peak_memory_mb": 100.0,
               "cpu_ms_per_request": 0.5, "image_size_mb": None, "cold_start_s": 3.0}
    return {
        "schema": "mldeploy-compare/1", "passed": passed, "target": "process", "limits": {"cpu": 1, "memory_gb": 1},
        "baseline": side, "candidate": {**side, "spec": "green", "deployment": "green"},
        "requests": {"total": 3, "byKind": {"sample": 3}},
        "gates": [{"name": "answers", "status": "pass" if passed else "fail", "message": "1 of 3 rows | differ"}],
        "answers": {"statusMismatches": [], "worstRows": [] if passed else [
            {"request": "req.txt line 1", "kind": "sample", "row": 0, "input": [1, 2], "baseline": 151.2, "candidate": 0.5,
             "labelLike": False, "maxAbs": 150.7, "maxRel": 0.99, "score": 1e5, "curl": {"baseline": "curl b", "candidate": "curl c"}}]},
        "contract": {"passed": True, "breaking": [], "additions": ["input.x: new optional parameter"], "notes": []},
        "speed": {"skipped": None, "baseline": figures, "candidate": figures},
        "sensitivity": {}, "notes": [],
    }


def test_markdown_and_terminal_summary_show_the_verdict_and_the_worst_rows() -> None:
    failed = _result_dict(False)
    markdown = render_markdown(failed)
    assert markdown.startswith("### mldeploy compare failed: `green` against `blue`")
    assert "| answers | ❌ fail | 1 of 3 rows \\| differ |" in markdown
    assert "| req.txt line 1 row 0 | `[1, 2]` | `151.2` | `0.5` |" in markdown
    text = format_summary(failed)
    assert "FAIL answers" in text and "151.2 | 0.5" in text and "curl c" in text
    assert text.splitlines()[-1] == "compare FAILED: answers"
    assert format_summary(_result_dict(True)).splitlines()[-1] == "compare PASSED"
