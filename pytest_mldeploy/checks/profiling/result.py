"""What a profile measured and concluded: the types profile.json and profile.html are written from.

`profiler.py` fills them, `report.py` renders them; neither imports the other's internals
through these types, so the two import one way only (profiler -> report -> result).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pytest_mldeploy.checks.profiling import noise
from pytest_mldeploy.checks.profiling import recommend as rec
from pytest_mldeploy.checks.profiling.gates import GateResult
from pytest_mldeploy.checks.profiling.sampling import Sample
from pytest_mldeploy.checks.profiling.stats import LoadStats, Round
from pytest_mldeploy.checks.profiling.steady import Stability

#: Verdicts of one closed-loop attempt.
HELD, DID_NOT_HOLD, INCONCLUSIVE, NOT_RUN = "held", "did not hold", "inconclusive", "could not run"


@dataclass
class Attempt:
    """One closed-loop try: the limits, what the container really got, and its verdict (held, did
    not hold, inconclusive, could not run) from the rounds it alternated with the reference."""

    cpu: float
    memory_gb: float
    stats: Optional[LoadStats] = None
    problems: list[str] = field(default_factory=list)
    inspected_cpu: Optional[float] = None
    inspected_memory_gb: Optional[float] = None
    verdict: str = NOT_RUN
    #: The reference (the running service) over the same rounds.
    reference: Optional[LoadStats] = None
    rounds: list[Round] = field(default_factory=list)
    comparison: Optional[noise.Comparison] = None
    #: How the service was put under the limits: "in place" (docker update) or "new container".
    method: str = ""
    #: How the limits were applied, and why a second container was needed when it was.
    how: str = ""

    @property
    def held(self) -> bool:
        return self.verdict == HELD

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "memoryInGb": self.memory_gb,
            "verdict": self.verdict,
            "held": self.held,
            "method": self.method,
            "how": self.how,
            "problems": self.problems,
            "inspectedCpu": self.inspected_cpu,
            "inspectedMemoryInGb": self.inspected_memory_gb,
            "stats": self.stats.to_dict() if self.stats else None,
            "reference": self.reference.to_dict() if self.reference else None,
            "comparison": self.comparison.to_dict() if self.comparison else None,
            "rounds": [r.to_dict() for r in self.rounds],
        }


@dataclass
class Verification:
    """The closed loop's verdict: verified, raised (verified after raising), failed, inconclusive
    (the rounds were too noisy to tell; a warning) or unverified (nothing could be tried, and why)."""

    verdict: str
    reason: str
    attempts: list[Attempt] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "attempts": [a.to_dict() for a in self.attempts]}


@dataclass
class ProfileResult:
    """Everything one profile measured and concluded; `report.profile_json` renders it."""

    deployment: str
    target: str
    service: str
    workload: str
    settings: dict[str, Any]
    current_cpu: Optional[float]
    current_memory_gb: Optional[float]
    sweep: list[LoadStats]
    sweep_reason: str
    concurrency: int
    concurrency_reason: str
    steady: LoadStats
    samples: list[Sample]
    phases: list[tuple[str, float, float]]
    recommendation: rec.Recommendation
    initial_recommendation: rec.Recommendation
    verification: Verification
    growth: rec.Growth
    gates: list[GateResult]
    warnings: list[str]
    load_processes: int
    generator_cpu: float
    started_at: float
    elapsed_s: float
    #: The rounds latency and throughput gates are judged in (the steady phase's, then the reference's).
    gate_rounds: list[Round] = field(default_factory=list)
    #: The cores this host gives (the recommendation's CPU cap).
    host_cores: Optional[float] = None
    json_path: Optional[Path] = None
    html_path: Optional[Path] = None
    #: One body of the workload and its Content-Type, for the `curl` line of a failure report.
    sample_body: Optional[bytes] = None
    sample_content_type: str = "application/json"
    #: How settled the CPU and memory estimates were when the steady phase ended.
    stability: Optional[Stability] = None

    @property
    def gates_passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]
