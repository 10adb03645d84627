"""Speed and size: the candidate against the baseline at the same concurrency, in alternating rounds.

One Locust run loads the baseline in even rounds and the candidate in odd ones (wall-clock rounds
of `round_s`, `checks/profiling/loadgen.py`), so a burst of other work on a shared runner falls on
both alike. Each (baseline, candidate) pair of rounds gives an excess over what is allowed:
- latency: candidate p95 - (p95_ratio x baseline p95 + p95_slack_ms), against the noise of the
  baseline rounds' p95 spread; the same for the median (p50), which a slower `run()` moves as
  surely as the p95 and the machine's noise moves less;
- throughput: throughput_ratio - candidate/baseline requests per second, against the baseline
  rounds' relative spread;
- errors: candidate error rate - baseline's - 1 point.
`checks/profiling/noise.judge` turns the pairs into pass / fail / inconclusive: a regression must
exceed the noise the rounds show. Meanwhile both services are sampled for peak memory and CPU
seconds per request served. Image size and cold start (start to healthy) are measured once per
side and gated only when a `max_*_ratio` is set.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pytest_mldeploy.checks.profiling import noise
from pytest_mldeploy.checks.profiling.loadgen import LocustLoad
from pytest_mldeploy.checks.profiling.sampling import INTERVAL_S, Sample, sampler_for
from pytest_mldeploy.checks.profiling.workload import write_bodies
from pytest_mldeploy.core.compare_spec import SpeedSpec

#: The candidate's error rate may exceed the baseline's by this much.
ERROR_SLACK = 0.01


@dataclass
class SideFigures:
    """One side's measurements."""

    p50_ms: float = math.nan
    p95_ms: float = math.nan
    qps: float = math.nan
    error_rate: float = math.nan
    requests: int = 0
    peak_memory_mb: Optional[float] = None
    cpu_ms_per_request: Optional[float] = None
    image_size_mb: Optional[float] = None
    cold_start_s: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.__dict__.items()}


@dataclass
class SpeedResult:
    """Both sides' figures, the per-round judgements and the single-measurement ratio gates."""

    spec: SpeedSpec
    baseline: SideFigures = field(default_factory=SideFigures)
    candidate: SideFigures = field(default_factory=SideFigures)
    judgements: dict[str, noise.Judgement] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    skipped: Optional[str] = None

    def problems(self) -> list[tuple[str, str]]:
        """(verdict, line) for each judgement that did not pass and each ratio gate exceeded."""
        out = []
        b, c = self.baseline, self.candidate
        for name, j in self.judgements.items():
            if j.verdict == noise.PASS:
                continue
            how = "clearly" if j.verdict == noise.FAIL else "within the noise:"
            if name.startswith("latency"):
                which = name.split("_")[1]
                line = (f"latency {which} {how} above {self.spec.p95_ratio:.0%} of the baseline + {self.spec.p95_slack_ms:g} ms: "
                        f"{getattr(c, which + '_ms'):.1f} vs {getattr(b, which + '_ms'):.1f} ms "
                        f"(median excess {j.median:.1f} ms, rounds' spread {j.spread:.1f} ms)")
            elif name == "throughput":
                line = (f"throughput {how} below {self.spec.throughput_ratio:.0%} of the baseline: "
                        f"{self.spec.throughput_ratio - j.median:.0%} of it in the median of {j.rounds} round pairs "
                        f"({c.qps:.1f} vs {b.qps:.1f} req/s overall, rounds' spread {j.spread:.0%})")
            else:
                line = f"error rate {how} above the baseline's: {c.error_rate:.2%} vs {b.error_rate:.2%}"
            out.append((j.verdict, line))
        for what, attr, limit in (("peak memory", "peak_memory_mb", self.spec.max_memory_ratio),
                                  ("CPU per request", "cpu_ms_per_request", self.spec.max_cpu_per_request_ratio),
                                  ("image size", "image_size_mb", self.spec.max_image_size_ratio),
                                  ("cold start", "cold_start_s", self.spec.max_cold_start_ratio)):
            old, new = getattr(b, attr), getattr(c, attr)
            if limit is not None and old and new is not None and new / old > limit:
                out.append((noise.FAIL, f"{what} {new:.1f} vs {old:.1f}: {new / old:.2f}x the baseline's (allowed {limit:g}x)"))
        return out

    @property
    def verdict(self) -> str:
        if self.skipped:
            return "skip"
        return noise.combine([v for v, _ in self.problems()] or [noise.PASS])

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "skipped": self.skipped, "problems": [line for _, line in self.problems()],
            "concurrency": self.spec.concurrency, "roundSeconds": self.spec.round_s,
            "baseline": self.baseline.to_dict(), "candidate": self.candidate.to_dict(),
            "judgements": {k: j.to_dict() for k, j in self.judgements.items()},
            "rounds": self.rounds,
        }  # fmt: skip


def _p50(stats: Any) -> float:
    """A round's median latency; infinite when the round answered nothing (as bad as it gets)."""
    return stats.latency_p50_ms if stats.total and math.isfinite(stats.latency_p50_ms) else math.inf


def _p95(stats: Any) -> float:
    """A round's p95; infinite when the round answered nothing."""
    return stats.latency_p95_ms if stats.total and math.isfinite(stats.latency_p95_ms) else math.inf


def _scoring_path(service: Any) -> str:
    return service.scoring_uri[len(service.base_url.rstrip("/")):] or "/score"


def _cpu_seconds(samples: list[Sample]) -> float:
    return sum(s.cpu for s in samples) * INTERVAL_S


def measure_speed(baseline: Any, candidate: Any, bodies: list[tuple[bytes, str]], spec: SpeedSpec,
                  workdir: Optional[Path] = None) -> SpeedResult:
    """Load both services in alternating rounds and judge the candidate (see the module doc).

    The load generator's files go to `workdir` (kept), else to a temporary folder (removed).
    """
    result = SpeedResult(spec)
    if not spec.enabled:
        result.skipped = "compare.speed.enabled is false"
        return result
    if not bodies:
        result.skipped = "no request to load the services with"
        return result
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="mldeploy-compare-speed-") as scratch:
            return measure_speed(baseline, candidate, bodies, spec, Path(scratch))
    keys = [(getattr(s, "keys", None) or [None])[0] for s in (baseline, candidate)]
    load = LocustLoad(baseline.base_url, write_bodies(bodies, workdir / "bodies.json"), workdir / "load",
                      key=keys[0], scoring_path=_scoring_path(baseline), alternate_key=keys[1])
    samplers = [sampler_for(baseline).start(), sampler_for(candidate).start()]
    try:
        run = load.run(spec.concurrency, (spec.rounds + 1) * spec.round_s, spec.warmup_s,
                       alternate_url=candidate.base_url, round_s=spec.round_s)
    finally:
        samples = [s.stop() for s in samplers]
    rounds = run.rounds()
    result.rounds = [r.to_dict() for r in rounds]
    pairs = noise.pairs_of(rounds)
    for figures, target, taken in ((result.baseline, 0, samples[0]), (result.candidate, 1, samples[1])):
        stats = run.stats(target)
        side_rounds = [p[target].qps for p in pairs]
        figures.p50_ms, figures.p95_ms = stats.latency_p50_ms, stats.latency_p95_ms
        figures.qps = noise.median(side_rounds) if side_rounds else math.nan
        figures.error_rate, figures.requests = stats.error_rate, stats.total
        if taken:
            figures.peak_memory_mb = max(s.memory for s in taken) / 2**20
            figures.cpu_ms_per_request = _cpu_seconds(taken) * 1000 / stats.total if stats.total else None
    if not pairs:
        result.judgements["latency_p95"] = noise.judge([])
        return result
    for name, figure in (("latency_p50", _p50), ("latency_p95", _p95)):
        latency = [(figure(a), figure(b)) for a, b in pairs]
        result.judgements[name] = noise.judge(
            [b - (spec.p95_ratio * a + spec.p95_slack_ms) for a, b in latency], noise=noise.iqr([a for a, _ in latency]))
    base_qps = [a.qps for a, _ in pairs]
    result.judgements["throughput"] = noise.judge(
        [spec.throughput_ratio - b.qps / a.qps for a, b in pairs],
        noise=noise.iqr(base_qps) / noise.median(base_qps) if noise.median(base_qps) else 0.0)
    result.judgements["errors"] = noise.judge([b.error_rate - a.error_rate - ERROR_SLACK for a, b in pairs])
    return result


def image_size_mb(service: Any) -> Optional[float]:
    """The size of a Docker service's image in MB, None for a process."""
    tag = getattr(service, "image", None)
    if not tag or not getattr(service, "container_id", None):
        return None
    from pytest_mldeploy.core.docker_client import docker_client

    client = docker_client(30)
    try:
        return float(client.images.get(tag).attrs.get("Size") or 0) / 2**20
    finally:
        client.close()
