"""profile.json carries Azure's field names and strict JSON; profile.html is one self-contained page
that a real browser renders."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pytest_mldeploy.checks.profiling.report import AZURE_FIELDS, write_reports


def test_profile_json_has_azures_fields_and_ours(profile_result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    json_path, _ = write_reports(profile_result, tmp_path)
    data = json.loads(json_path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    for name in AZURE_FIELDS:
        assert name in data, name
    assert data["requestedCpu"] == profile_result.recommendation.cpu
    assert data["requestedMemoryInGb"] == profile_result.recommendation.memory_gb
    assert data["measuredQueriesPerSecond"] == pytest.approx(690.5)
    assert data["successRate"] == 100.0
    assert data["totalQueries"] == data["successQueries"] == profile_result.steady.total
    # the max comes from the steady window only (samples 12..29): 0.3 + 0.05 * 2
    assert data["maxUtilizedCpu"] == pytest.approx(0.4)
    assert data["maxUtilizedMemoryInGb"] == pytest.approx(229 / 1024)
    assert [s["concurrency"] for s in data["sweep"]] == [1, 2, 4]
    assert data["verification"]["verdict"] == "verified"
    attempt = data["verification"]["attempts"][0]
    assert attempt["held"] is True and attempt["verdict"] == "held"
    assert attempt["comparison"]["verdict"] == "pass" and attempt["comparison"]["pairs"] == 3
    assert [r["target"] for r in attempt["rounds"]] == [0, 1, 0, 1, 0, 1]
    assert attempt["reference"]["qps"] == pytest.approx(690)
    assert len(data["gateRounds"]) == 11 and data["hostCores"] == 2.0
    assert [g["verdict"] for g in data["gates"]] == ["pass", "fail"]
    assert data["cpuFloor"] is False and data["recommendation"]["cpu_cap"] is None
    assert set(data["memoryGrowth"]) >= {"slope_mb_per_min", "r2", "leak"}
    assert data["gatesPassed"] is False
    assert [g["message"] for g in data["gates"]] == [
        "latency p95 4.2 ms <= gate 200 ms",
        "throughput 690.5 req/s < gate 1000 req/s (11 of 11 rounds past the gate, median round 690.0 req/s, rounds' spread 0.0 req/s)",
    ]
    assert len(data["samples"]) == 30 and data["samples"][0]["t"] == 0
    # how settled the steady phase's estimates were, and how the limits were tried
    assert data["stability"]["samples"] == 18 and data["estimatesSettled"] is data["stability"]["stable"]
    assert data["stability"]["cpu_low"] <= data["requestedCpu"] <= data["stability"]["cpu_high"]
    assert attempt["method"] == "in place" and attempt["how"] == ""


def test_nan_figures_become_null(profile_result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    profile_result.steady.latency_p99_ms = float("nan")
    json_path, _ = write_reports(profile_result, tmp_path)
    assert json.loads(json_path.read_text())["latencyPercentile99InMs"] is None


def test_html_is_self_contained_and_escaped(profile_result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, html_path = write_reports(profile_result, tmp_path)
    text = html_path.read_text()
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert "<b>Confidence:</b> CPU " in text and "from 18 samples" in text and "<td>in place</td>" in text
    assert "a warning &lt;b&gt;escaped&lt;/b&gt;" in text
    assert "throughput 690.5 req/s &lt; gate 1000 req/s" in text
    assert "verified" in text


def test_html_shows_inconclusive_verdicts_and_a_floor(profile_result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from pytest_mldeploy.checks.profiling.gates import evaluate_gates
    from pytest_mldeploy.checks.profiling.recommend import fit_to_host

    profile_result.recommendation = fit_to_host(replace(profile_result.recommendation, cpu_p90=1.95, cpu=2.3), 2)
    profile_result.verification.verdict = "inconclusive"
    profile_result.gates = evaluate_gates({"latency_p95_ms": 4.0}, {"latencyPercentile95InMs": 4.2}, [s.stats for s in profile_result.gate_rounds[:2]] + [profile_result.sweep[0]] * 2)
    json_path, html_path = write_reports(profile_result, tmp_path)
    text = html_path.read_text()
    assert '<span class="badge warn">inconclusive</span>' in text and "gates inconclusive" in text
    assert "recommended CPU (a floor)" in text and "capped at 2 cores" in text
    data = json.loads(json_path.read_text())
    assert data["cpuFloor"] is True and data["requestedCpu"] == 2.0 and data["verdict"] == "inconclusive"
    assert data["gatesPassed"] is True and data["gates"][0]["verdict"] == "inconclusive"


@pytest.fixture
def chromium(system_tool) -> str:  # type: ignore[no-untyped-def]
    """A headless browser on PATH, else Debian's chromium (installed when we can, see tests/conftest.py)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    return found or system_tool("chromium", "chromium", "renders the HTML report headless")


def test_html_renders_in_a_headless_browser(profile_result, tmp_path: Path, chromium: str) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    _, html_path = write_reports(profile_result, tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chrome'}",
         "--window-size=1200,2400", f"--screenshot={shot}", html_path.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with Image.open(shot) as image:
        assert image.size == (1200, 2400)
        gray = image.convert("L")
        histogram = gray.histogram()
        # Not blank: a real page has text, charts and tables, so many pixels differ from the background.
        dark = sum(histogram[:200])
        assert dark > 0.02 * image.size[0] * image.size[1]
        # The charts (colored lines on white) rendered: there are saturated pixels.
        hsv = np.asarray(image.convert("RGB").convert("HSV"))
        saturated = int(((hsv[..., 1] > 120) & (hsv[..., 2] > 80)).sum())
        assert saturated > 2000
