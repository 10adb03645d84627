"""Profiles on the process target against the real scoring server (short durations via config overrides)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from pytest_mldeploy.checks.base import CheckContext, Outcome
from pytest_mldeploy.client import ScoringClient
from pytest_mldeploy.checks.profiling import ProfileSettings, check_profile, profile_deployment
from pytest_mldeploy.checks.profiling.report import AZURE_FIELDS
from pytest_mldeploy.checks.profiling.sampling import ProcessSampler
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.targets.process import ProcessTarget

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
PROJECTS = REPO / "tests" / "projects"
FAST = ProfileSettings(step_s=2, min_step_s=1, warmup_s=0.5)


def _project(source: Path, tmp_path: Path) -> Any:
    """A copy of a project (so its registry lands in tmp_path, not the repository)."""
    copy = tmp_path / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    return load_project(copy / "mldeploy.yaml")


def _short(deployment: Any, **profile: Any) -> Any:
    """The deployment with its profile settings overridden (pydantic copies; the project file is untouched)."""
    return deployment.model_copy(update={"profile": deployment.profile.model_copy(update=profile)})


@pytest.fixture
def services() -> Iterator[list]:
    started: list = []
    yield started
    for service in started:
        service.delete()


def test_example_is_profiled_and_reports_are_written(tmp_path: Path) -> None:
    project = _project(EXAMPLE, tmp_path)
    deployment = _short(project.deployment("diabetes"), duration_s=4, max_concurrency=4)
    servers_before = {p.pid for p in _children() if "pytest_mldeploy.server" in " ".join(p.cmdline())}
    lines: list[str] = []
    result = profile_deployment(project, deployment, "process", tmp_path / "out", progress=lines.append, settings=FAST)

    assert result.json_path == tmp_path / "out" / "profile.json" and result.html_path == tmp_path / "out" / "profile.html"
    data = json.loads(result.json_path.read_text())
    assert all(name in data for name in AZURE_FIELDS)
    assert data["target"] == "process"
    assert data["successRate"] == 100.0 and data["totalQueries"] > 0
    assert data["requestedCpu"] >= 0.1 and data["requestedMemoryInGb"] >= 0.1
    # the recommendation covers what was measured, plus the margin
    assert data["requestedMemoryInGb"] >= data["maxUtilizedMemoryInGb"] * 1.15 - 1e-9
    assert data["requestedCpu"] >= data["recommendation"]["cpu_p90"] * 1.15 - 1e-9
    assert data["verification"]["verdict"] == "unverified"
    assert "cannot enforce" in data["verification"]["reason"]
    assert [s["concurrency"] for s in data["sweep"]][0] == 1
    assert data["concurrency"] in [s["concurrency"] for s in data["sweep"]]
    assert [g["gate"] for g in data["gates"]] == ["latency_p95_ms"]  # the example's gate
    assert data["gates"][0]["verdict"] in ("pass", "inconclusive")
    assert data["hostCores"] == len(os.sched_getaffinity(0)) and data["requestedCpu"] <= data["hostCores"]
    assert len(data["gateRounds"]) >= 2  # the steady phase split in rounds
    assert len(data["samples"]) >= 4
    assert any(p["label"] == "steady" for p in data["phases"])
    assert "sample_requests.txt" in data["workload"]
    html = result.html_path.read_text()
    assert html.count('src="data:image/png;base64,') == 3
    assert any(line.startswith("profile: sweep concurrency 1:") for line in lines)
    assert any("verification unverified" in line for line in lines)
    # the service it deployed is gone again
    assert not any("pytest_mldeploy.server" in " ".join(p.cmdline()) for p in _children() if p.pid not in servers_before)


def _children() -> list:
    import psutil

    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            child.cmdline()
            out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def test_slow_script_fails_its_latency_gate(tmp_path: Path, services: list) -> None:
    project = _project(PROJECTS / "slow", tmp_path)
    deployment = project.deployment("slow")
    service = ProcessTarget().deploy(deployment, project)
    services.append(service)
    ctx = CheckContext(project, deployment, service, ScoringClient.from_service(service), target=ProcessTarget(), report_dir=tmp_path / "report")
    result = check_profile(ctx)

    assert result.outcome is Outcome.FAILED
    p95 = result.figures["latencyPercentile95InMs"]
    assert p95 >= 150  # run() sleeps 150 ms: no request can be faster
    assert f"latency p95 {p95:.1f} ms > gate 50 ms" in result.summary
    assert "rounds past the gate" in result.summary  # clearly past: judged against the rounds' spread, not noise
    assert "[profile]" in result.report and "curl" in result.report and "/score" in result.report
    assert result.figures["verdict"] == "unverified"
    assert Path(result.figures["report"]).is_file() and Path(result.figures["json"]).is_file()
    assert json.loads(Path(result.figures["json"]).read_text())["gatesPassed"] is False


def test_swagger_example_is_the_workload_without_a_requests_file(tmp_path: Path, services: list) -> None:
    project = _project(EXAMPLE, tmp_path)
    deployment = _short(project.deployment("diabetes"), requests=None, duration_s=3, max_concurrency=1)
    service = ProcessTarget().deploy(deployment, project)
    services.append(service)
    result = profile_deployment(project, deployment, ProcessTarget(), None, service=service, settings=FAST)
    assert "swagger example" in result.workload
    assert result.steady.success == result.steady.total > 0
    assert result.json_path is None
    assert not service.deleted  # a service passed in is the caller's to delete


def test_leaky_script_is_flagged(tmp_path: Path) -> None:
    project = _project(PROJECTS / "leaky", tmp_path)
    result = profile_deployment(project, "leaky", "process", tmp_path / "out", settings=FAST)
    assert result.growth.leak, result.growth.reason
    assert result.growth.slope_mb_per_min > 10 and result.growth.r2 >= 0.8
    assert any("probable leak" in w for w in result.warnings)
    data = json.loads(result.json_path.read_text())
    assert data["memoryLeak"] is True and data["memoryGrowth"]["leak"] is True


def test_process_sampler_counts_children(tmp_path: Path) -> None:
    # The parent sleeps; its child spins: the tree's CPU is the child's.
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'while True: pass']); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        time.sleep(0.5)
        sampler = ProcessSampler(parent.pid, interval_s=0.5).start()
        time.sleep(3)
        samples = sampler.stop()
    finally:
        import signal

        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    assert len(samples) >= 3
    assert max(s.cpu for s in samples) > 0.2  # a spinning child; the parent alone would read about 0
    assert all(s.memory > 5 * 1024**2 for s in samples)  # two Python interpreters


@pytest.mark.parametrize("requests, kind", [("images", "2 request bodies, multipart/form-data"), ("requests.http", "2 request bodies, multipart/form-data")])
def test_files_profile_a_rawhttp_service_that_reads_request_files(tmp_path: Path, requests: str, kind: str) -> None:
    project = _project(Path(__file__).parent / "projects" / "multipart", tmp_path)
    deployment = _short(project.deployment("multipart"), requests=project.root / requests)
    result = profile_deployment(project, deployment, "process", tmp_path / "out", settings=FAST)
    assert kind in result.workload
    # the script answers 400 unless request.files holds a file: every request carried one
    assert result.steady.total > 0 and result.steady.success == result.steady.total, result.steady.errors
    assert result.sample_content_type.startswith("multipart/form-data; boundary=")


def test_the_config_takes_a_folder_of_files(tmp_path: Path) -> None:
    project = _project(Path(__file__).parent / "projects" / "multipart", tmp_path)
    assert project.deployment("multipart").profile.requests == project.root / "images"


def test_nothing_to_send_skips_the_profile_with_the_reason(tmp_path: Path, services: list) -> None:
    # The slow script declares no schema, so its swagger has no example; without requests there is nothing to send.
    project = _project(PROJECTS / "slow", tmp_path)
    deployment = _short(project.deployment("slow"), requests=None)
    service = ProcessTarget().deploy(deployment, project)
    services.append(service)
    ctx = CheckContext(project, deployment, service, ScoringClient.from_service(service), target=ProcessTarget(), report_dir=tmp_path / "r")
    result = check_profile(ctx)
    assert result.outcome is Outcome.SKIPPED
    assert "profile.requests: not set" in result.summary and "a folder of files" in result.report


def _burn(stop_at: float, on_s: float, off_s: float) -> None:
    """Spin in bursts (`on_s` busy, `off_s` idle) until `stop_at`: another job sharing the runner."""
    while time.time() < stop_at:
        busy_until = time.time() + on_s
        while time.time() < busy_until:
            pass
        time.sleep(off_s)


def test_a_loaded_machine_does_not_fail_a_correct_deployment(tmp_path: Path) -> None:
    """One process per core burns CPU in bursts through the whole profile of the example (its own
    gate, process target): the gates may be inconclusive, never failed."""
    import multiprocessing

    project = _project(EXAMPLE, tmp_path)
    deployment = _short(project.deployment("diabetes"), duration_s=8, max_concurrency=8)
    stop_at = time.time() + 90
    burners = [multiprocessing.Process(target=_burn, args=(stop_at, 0.7, 0.5), daemon=True) for _ in range(len(os.sched_getaffinity(0)))]
    for burner in burners:
        burner.start()
    try:
        result = profile_deployment(project, deployment, "process", tmp_path / "out", settings=FAST)
    finally:
        for burner in burners:
            burner.kill()
            burner.join()
    assert result.gates and all(g.verdict in ("pass", "inconclusive") for g in result.gates), [g.message for g in result.gates]
    assert result.gates_passed
    assert len(result.gate_rounds) >= 4  # the steady phase was judged in rounds
    assert result.recommendation.cpu <= result.host_cores


def test_the_sweep_stops_where_max_concurrent_requests_would_answer_429(tmp_path: Path) -> None:
    # Azure's default for a v2 deployment is one request per instance: 2 in flight, then 429.
    project = _project(EXAMPLE, tmp_path)
    deployment = _short(project.deployment("diabetes"), duration_s=3, max_concurrency=8)
    deployment = deployment.model_copy(update={"max_concurrent_requests": 1})
    result = profile_deployment(project, deployment, "process", tmp_path / "out", settings=FAST)
    assert max(step.concurrency for step in result.sweep) <= 2
    assert "max_concurrent_requests 1" in result.sweep_reason
    assert any("429" in w for w in result.warnings), result.warnings
    assert result.steady.total > 0 and result.steady.success == result.steady.total, result.steady.errors
