"""The reliability suite's tally: scenarios tried / held / failed, printed at the end of a run and written to JSON.

Every test marked `reliability` (here or anywhere) is one scenario: held when it passes, failed when
it fails; skips are counted apart. A campaign test that tries many things in one test (a fuzz run, a
kill -9 loop) records its own counts with the `reliability_counter` fixture instead:

    def test_kill_loop(reliability_counter):
        for _ in range(20):
            ...
            reliability_counter.add("registry kill -9", held=index_is_consistent, detail="...")

Counts travel in the test report's `user_properties`, so they add up under pytest-xdist too. The
totals are printed in pytest's terminal summary and written to `mldeploy-report/reliability.json`
(or the file named by `MLDEPLOY_RELIABILITY_JSON`); `benchmarks/bench_reliability.py` reads that file
for `docs/reliability.md`.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

MARKER = "reliability"
PROPERTY = "mldeploy_reliability"
JSON_ENV = "MLDEPLOY_RELIABILITY_JSON"
_DETAILS_KEPT = 20


@dataclass
class ReliabilityCounter:
    """Tried / held / failed counts of one campaign test, by kind of attempt."""

    kinds: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def add(self, kind: str, *, held: bool, detail: str = "") -> None:
        """One attempt of `kind`: held (the system behaved) or failed; a failure's `detail` is kept (the first 20)."""
        counts = self._kind(kind)
        counts["tried"] += 1
        counts["held" if held else "failed"] += 1
        if not held and detail and len(counts["failures"]) < _DETAILS_KEPT:
            counts["failures"].append(detail)

    def note(self, kind: str, text: str) -> None:
        """A fact about the campaign worth showing beside its counts (e.g. '12 answers were the script's 500')."""
        self._kind(kind)["notes"].append(text)

    def counts(self, kind: str) -> Dict[str, Any]:
        """The counts so far for `kind` (tried, held, failed, failures, notes)."""
        return self._kind(kind)

    def _kind(self, kind: str) -> Dict[str, Any]:
        return self.kinds.setdefault(kind, {"tried": 0, "held": 0, "failed": 0, "failures": [], "notes": []})


@pytest.fixture
def reliability_counter(request: pytest.FixtureRequest) -> ReliabilityCounter:
    """Record a campaign's own tried / held / failed counts (they replace the test's single scenario)."""
    counter = ReliabilityCounter()
    request.node.user_properties.append((PROPERTY, counter.kinds))
    return counter


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    """Every test in this folder belongs to the suite, marked or not."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here and item.get_closest_marker(MARKER) is None:
            item.add_marker(MARKER)


@dataclass
class _Scenario:
    nodeid: str
    area: str
    outcome: str = "passed"
    duration_s: float = 0.0
    campaign: Optional[Dict[str, Dict[str, Any]]] = None
    longrepr: str = ""


class _Tally:
    """Collects the reports of reliability tests (on the xdist controller when there is one)."""

    def __init__(self) -> None:
        self.scenarios: Dict[str, _Scenario] = {}

    def add(self, report: pytest.TestReport) -> None:
        if MARKER not in report.keywords:
            return
        scenario = self.scenarios.setdefault(report.nodeid, _Scenario(report.nodeid, _area(report.nodeid)))
        scenario.duration_s += report.duration
        for name, value in report.user_properties:
            if name == PROPERTY and value:
                scenario.campaign = value
        if report.failed:
            scenario.outcome = "failed"
            scenario.longrepr = str(report.longrepr)[-2000:]
        elif report.skipped and scenario.outcome != "failed":
            scenario.outcome = "skipped"
            scenario.longrepr = _skip_reason(report)

    def summary(self) -> Dict[str, Any]:
        areas: Dict[str, Dict[str, int]] = {}
        totals = {"tried": 0, "held": 0, "failed": 0}
        tests = {"passed": 0, "failed": 0, "skipped": 0}
        rows = []
        for scenario in self.scenarios.values():
            tests[scenario.outcome] += 1
            tried, held, failed = _counts(scenario)
            area = areas.setdefault(scenario.area, {"tried": 0, "held": 0, "failed": 0, "skipped": 0})
            area["skipped"] += scenario.outcome == "skipped"
            for key, value in (("tried", tried), ("held", held), ("failed", failed)):
                area[key] += value
                totals[key] += value
            rows.append({
                "test": scenario.nodeid, "area": scenario.area, "outcome": scenario.outcome,
                "tried": tried, "held": held, "failed": failed, "duration_s": round(scenario.duration_s, 2),
                "campaign": scenario.campaign, "detail": scenario.longrepr if scenario.outcome != "passed" else "",
            })
        return {
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "totals": totals, "tests": tests, "areas": dict(sorted(areas.items())), "scenarios": rows,
        }


def _counts(scenario: _Scenario) -> tuple[int, int, int]:
    """(tried, held, failed) of one test: its campaign's counts, or one scenario by its outcome."""
    if scenario.outcome == "skipped":
        return 0, 0, 0
    if scenario.campaign:
        tried = sum(k["tried"] for k in scenario.campaign.values())
        held = sum(k["held"] for k in scenario.campaign.values())
        failed = sum(k["failed"] for k in scenario.campaign.values())
        if scenario.outcome == "failed" and failed == 0:  # the test's own final assertion failed
            return tried + 1, held, 1
        return tried, held, failed
    return 1, int(scenario.outcome == "passed"), int(scenario.outcome == "failed")


def _area(nodeid: str) -> str:
    """`tests/reliability/test_fuzz_campaign.py::x` -> `fuzz_campaign`."""
    stem = Path(nodeid.split("::", 1)[0]).stem
    return stem[5:] if stem.startswith("test_") else stem


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


class _TallyPlugin:
    """Registered as a plugin, not left as conftest hooks: a conftest's per-item hooks only see the
    items under its own folder, and the tally also counts tests marked `reliability` elsewhere."""

    def __init__(self) -> None:
        self.tally = _Tally()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tally.add(report)

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if hasattr(config, "workerinput"):  # an xdist worker: the controller prints the tally
            return
        if not self.tally.scenarios:
            return
        summary = self.tally.summary()
        path = Path(os.environ.get(JSON_ENV) or Path(str(config.rootpath)) / "mldeploy-report" / "reliability.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        write = terminalreporter.write_line
        terminalreporter.section("reliability")
        width = max(len(a) for a in summary["areas"])
        for area, counts in summary["areas"].items():
            skipped = f", {counts['skipped']} skipped" if counts["skipped"] else ""
            write(f"  {area:<{width}}  {counts['tried']:>5} tried  {counts['held']:>5} held  {counts['failed']:>4} failed{skipped}")
        t, tests = summary["totals"], summary["tests"]
        write(f"reliability: {t['tried']} tried, {t['held']} held, {t['failed']} failed "
              f"({tests['passed'] + tests['failed'] + tests['skipped']} tests: {tests['passed']} passed, "
              f"{tests['failed']} failed, {tests['skipped']} skipped); written to {path}")


_PLUGIN_NAME = "mldeploy-reliability-tally"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(_PLUGIN_NAME):
        config.pluginmanager.register(_TallyPlugin(), _PLUGIN_NAME)
