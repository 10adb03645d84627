"""`mldeploy compare` on real services (process target): the example against planted candidates.

Each candidate is the example's diabetes service with one change (tests/compare/compare_projects.py); the
comparison must find exactly that change, and pass the unchanged one.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from pytest_mldeploy.cli import main
from pytest_mldeploy.compare import run_compare


def _gates(data: dict) -> dict[str, str]:
    return {gate["name"]: gate["status"] for gate in data["gates"]}


def test_identical_candidate_passes_and_writes_compare_json(project: Path, tmp_path: Path, capsys) -> None:
    code = main(["compare", "baseline", "candidate-same", "--config", str(project), "--target", "process",
                 "--out", str(tmp_path / "out"), "--markdown", str(tmp_path / "summary.md")])
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert code == 0, out
    assert data["schema"] == "mldeploy-compare/1" and data["passed"] is True
    assert _gates(data)["answers"] == "pass" and _gates(data)["contract"] == "pass" and _gates(data)["sensitivity"] == "pass"
    assert _gates(data)["speed"] in ("pass", "warn")  # warn: inconclusive within the noise, never a failure
    assert data["requests"]["byKind"]["sample"] == 10 and data["requests"]["byKind"]["generated"] > 0
    assert data["answers"]["mismatchedRows"] == 0 and data["answers"]["rows"] > 10
    assert data["speed"]["baseline"]["requests"] > 0 and data["speed"]["candidate"]["requests"] > 0
    assert data["speed"]["candidate"]["peak_memory_mb"] > 10
    assert "compare PASSED" in out
    assert (tmp_path / "summary.md").read_text().startswith("### mldeploy compare passed")


def test_candidate_sleeping_20ms_fails_on_latency(project: Path, tmp_path: Path) -> None:
    result = run_compare("baseline", "candidate-slow", config=project, target="process", out=tmp_path)
    data = result.to_dict()
    assert not result.passed
    assert _gates(data)["speed"] == "fail", data["speed"]
    assert _gates(data)["answers"] == "pass"
    assert data["speed"]["judgements"]["latency_p50"]["verdict"] == "fail"
    assert any(line.startswith("latency p50 clearly above") for line in data["speed"]["problems"])
    assert data["speed"]["candidate"]["p50_ms"] > data["speed"]["baseline"]["p50_ms"]


def test_scaled_input_fails_on_answers_with_the_worst_rows_shown(quick_project: Path, tmp_path: Path, capsys) -> None:
    code = main(["compare", "baseline", "candidate-scaled", "--config", str(quick_project), "--target", "process",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "compare.json").read_text())
    assert code == 1
    assert _gates(data) == {"answers": "fail", "contract": "pass", "speed": "skip", "sensitivity": "pass"}
    worst = data["answers"]["worstRows"]
    assert len(worst) == 5
    first = worst[0]
    assert first["kind"] == "sample"  # the user's own requests before generated ones of the same error
    assert abs(first["candidate"] - first["baseline"]) == pytest.approx(first["maxAbs"]) and first["maxAbs"] > 1
    assert len(first["input"]) == 10  # the input row that answer belongs to, beside it
    assert first["curl"]["baseline"].startswith("curl ") and "/score" in first["curl"]["candidate"]
    assert "worst rows (baseline | candidate):" in out and "compare FAILED: answers" in out
    page = (tmp_path / "compare.html").read_text(encoding="utf-8")  # beside compare.json, the same worst rows
    assert f"compare_html: {tmp_path / 'compare.html'}" in out and html.escape(first["curl"]["candidate"]) in page


def test_renamed_input_parameter_fails_on_contract(quick_project: Path, tmp_path: Path) -> None:
    data = run_compare("baseline", "candidate-renamed", config=quick_project, target="process").to_dict()
    assert _gates(data)["contract"] == "fail"
    assert data["contract"]["breaking"] == ["input.data: parameter renamed to 'features'"]
    # The baseline's requests name `data`: the candidate refuses them.
    assert data["answers"]["statusMismatches"][0]["candidate"] == 400


def test_constant_candidate_is_called_out(quick_project: Path) -> None:
    data = run_compare("baseline", "candidate-constant", config=quick_project, target="process").to_dict()
    assert _gates(data)["sensitivity"] == "fail"
    assert data["sensitivity"]["constant"] is True and data["sensitivity"]["constantAnswer"] == [0.5, 0.5]
    assert "whatever they hold" in data["sensitivity"]["message"]
