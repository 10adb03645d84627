"""The phases of a profile, on a running service: sweep, steady, verify, confirm.

`PhaseRunner` holds one profile run's state (the service, its live Locust load, the phases
measured so far) and runs each phase as `profiler.py` calls it; what the phases measured is
assembled into a `ProfileResult`, warned about and gated by `profiler.py`. How each phase
decides when it is done is in `sweep.py`, `steady.py` and `verification.py`.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from pytest_mldeploy.checks.profiling import recommend as rec
from pytest_mldeploy.checks.profiling.loadgen import LiveLoad, LoadRun, LocustLoad, sleep_until
from pytest_mldeploy.checks.profiling.result import Verification
from pytest_mldeploy.checks.profiling.sampling import Sample, Sampler
from pytest_mldeploy.checks.profiling.stats import LoadStats, Round, split_rounds, summarize
from pytest_mldeploy.checks.profiling.steady import Stability, assess
from pytest_mldeploy.checks.profiling.sweep import (
    FLAT,
    MIN_GAIN,
    RISING,
    concurrency_levels,
    gain_verdict,
    generator_saturated,
    past_the_limits,
)
from pytest_mldeploy.checks.profiling.verification import Verifier
from pytest_mldeploy.errors import ServiceError

Progress = Callable[[str], None]
#: The steady phase runs at least this long (when `duration_s` allows), whatever the estimates say.
MIN_STEADY_S = 6.0
#: A verification round is long enough for this many requests at the steady throughput.
ROUND_REQUESTS = 200


@dataclass
class ProfileSettings:
    """How the load is shaped beyond `profile:` in mldeploy.yaml (tests shorten these)."""

    #: The longest a sweep level is measured ...
    step_s: float = 3.0
    #: ... and the shortest, in rounds of `sweep_round_s`.
    min_step_s: float = 2.0
    sweep_round_s: float = 0.5
    #: Not measured at the start of the load (the service's first requests) ...
    warmup_s: float = 1.0
    #: ... and after each change of the number of users.
    settle_s: float = 0.5
    #: Locust processes; None picks 1 and adds workers when one process saturates a core.
    processes: Optional[int] = None
    verify: bool = True
    max_raises: int = 2
    #: Length of the rounds the steady load is judged in, and the verification alternates in;
    #: None: a tenth of `profile.duration_s`, between 1 and 4 s.
    round_s: Optional[float] = None

    def rounds_of(self, duration_s: float) -> float:
        return self.round_s or min(max(duration_s / 10.0, 1.0), 4.0)


def say(progress: Optional[Progress], line: str) -> None:
    """Pass one progress line on, when someone is listening."""
    if progress is not None:
        progress(line)


def describe_step(stats: LoadStats) -> str:
    """A load level's figures in one line of progress."""
    return (
        f"{stats.qps:.1f} req/s, p50 {stats.latency_p50_ms:.1f} ms, p95 {stats.latency_p95_ms:.1f} ms, "
        f"errors {stats.error_rate:.1%}"
    )


def _max_processes() -> int:
    """Extra load processes only help when the service keeps cores to itself: half the machine, at most 4."""
    cores = os.cpu_count() or 1
    return max(1, min(cores // 2, 4)) if cores >= 4 else 1


def host_cores(target: Any) -> Optional[float]:
    """The cores a service can get here: the Docker engine's `NCPU`, or this process's CPU affinity."""
    if getattr(target, "name", "") == "docker":
        try:
            return float(target.client.info()["NCPU"])
        except Exception:
            return None
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return float(os.cpu_count() or 1)


@dataclass
class SteadyPhase:
    """The steady phase's window, figures, samples and how settled its estimates were."""

    start: float
    end: float
    stats: LoadStats
    rounds: list[Round]
    window: list[Sample]
    stability: Stability


class PhaseRunner:
    """One profile run's state: the service, its load generator, what has been measured so far."""

    def __init__(self, project: Any, deployment: Any, service: Any, target: Any, workdir: Path,
                 settings: ProfileSettings, progress: Optional[Progress]) -> None:  # fmt: skip
        self.project, self.deployment, self.service, self.target = project, deployment, service, target
        self.workdir, self.settings, self.progress = workdir, settings, progress
        self.spec = deployment.profile
        self.warnings: list[str] = []
        self.phases: list[tuple[str, float, float]] = []
        self.processes = settings.processes or 1
        self.generator_cpu = 0.0
        self.bodies_path = workdir / "bodies.txt"
        self.live: Optional[LiveLoad] = None

    def swagger(self) -> Any:
        """The service's swagger document when the workload needs its example; None otherwise."""
        from pytest_mldeploy.client import ScoringClient

        if getattr(self.deployment.profile, "requests", None):
            return None
        with ScoringClient.from_service(self.service) as client:
            try:
                return client.swagger()
            except Exception as exc:
                raise ServiceError(f"profiling: {self.service.describe()}: GET /swagger.json failed ({exc})") from None

    def _load_for(self, service: Any, alternate: Any = None) -> LocustLoad:
        return LocustLoad(
            service.base_url,
            self.bodies_path,
            self.workdir,
            key=(service.keys[0] if service.keys else None),
            processes=self.processes,
            request_timeout_s=max(float(getattr(self.deployment, "scoring_timeout_ms", 60000)) / 1000 + 5, 10),
            alternate_key=(alternate.keys[0] if alternate is not None and alternate.keys else None),
        )

    def _run(self, service: Any, users: int, seconds: float, label: str, alternate: Any = None) -> LoadRun:
        """One Locust run of its own (a second container's verification, or a confirmation without a live load)."""
        load = self._load_for(service, alternate)
        if alternate is None:
            run = load.run(users, seconds, self.settings.warmup_s)
        else:
            run = load.run(
                users, seconds, self.settings.warmup_s, alternate_url=alternate.base_url, round_s=self.round_s,
            )  # fmt: skip
        self.generator_cpu = max(self.generator_cpu, run.generator_cpu)
        self.phases.append((label, run.start, run.end))
        return run

    # ---- the live load -------------------------------------------------------------------------

    @property
    def _live_max_s(self) -> float:
        """The live load's upper bound: every level at its longest, the steady phase, the verification
        attempts and a confirmation, with room for waits (the profiler stops it long before)."""
        levels = len(concurrency_levels(self.max_users))
        verify = (self.settings.max_raises + 1) * max(self.spec.duration_s, 6 * self.round_s) if self.settings.verify else 0
        return levels * (self.settings.step_s + 2) + self.spec.duration_s + verify + self.confirm_s + 60

    def start_live(self, users: int) -> LiveLoad:
        """Start the live load and wait for its first report (Locust's start-up)."""
        self.live = LiveLoad(self._load_for(self.service), users, self._live_max_s).start()
        self.live.wait_covered(time.time() + 0.01, timeout_s=60)
        return self.live

    def end_live(self) -> None:
        """Stop the live load (once); the most CPU a load process used counts for the generator warning."""
        if self.live is None:
            return
        live, self.live = self.live, None
        try:
            live.stop()
        finally:
            live.close()
            self.generator_cpu = max(self.generator_cpu, live.generator_cpu)

    def _window(self, start: float, end: float, users: int) -> LoadStats:
        assert self.live is not None
        self.live.wait_covered(end)
        return summarize(self.live.records(), start, end, users, self.live.errors_between(start, end))

    @property
    def round_s(self) -> float:
        return self.settings.rounds_of(self.spec.duration_s)

    @property
    def confirm_s(self) -> float:
        """How long a failed gate's confirmation loads: half the steady phase, at least three rounds."""
        return max(self.spec.duration_s / 2, 3 * self.round_s)

    @property
    def max_users(self) -> int:
        """The sweep's ceiling: `max_concurrency`, and never more than the service admits at once.

        With `max_concurrent_requests` N the server answers 429 past 2 × N requests in flight, as
        Azure does; loading it harder would measure those refusals, not the service.
        """
        limit = getattr(self.deployment, "max_concurrent_requests", None)
        return min(self.spec.max_concurrency, 2 * limit) if limit else self.spec.max_concurrency

    # ---- the phases ----------------------------------------------------------------------------

    def sweep(self) -> tuple[list[LoadStats], str, list[LoadStats]]:
        """Levels 1, 2, 4, ... in the live load; the steps, why it stopped, and the steps the knee is chosen among."""
        steps: list[LoadStats] = []
        ceiling = self.max_users
        reason = f"reached max_concurrency {ceiling}"
        if ceiling < self.spec.max_concurrency:
            reason = (f"reached {ceiling} concurrent requests, what max_concurrent_requests "
                      f"{self.deployment.max_concurrent_requests} admits (2 per allowed request, as Azure; more get 429)")
            self.warnings.append(f"the load stopped at {ceiling} concurrent requests: max_concurrent_requests "
                                 f"{self.deployment.max_concurrent_requests} answers 429 beyond that (as Azure's "
                                 "max_concurrent_requests_per_instance does); raise it to profile higher concurrency")
        levels = concurrency_levels(ceiling)
        best_rounds: list[float] = []
        best_index = 0
        index = 0
        self.start_live(levels[0])
        fresh = True
        while index < len(levels):
            users = levels[index]
            stats, rounds, verdict = self._level(users, best_rounds, fresh)
            fresh = False
            if (self.settings.processes is None and generator_saturated(self.live.generator_cpu if self.live else 0.0)
                    and self.processes < _max_processes()):  # fmt: skip
                self.processes = min(self.processes * 2, _max_processes())
                say(self.progress, f"profile: the load generator saturated a core; retrying with {self.processes} Locust processes")
                self.end_live()
                self.phases.pop()
                self.start_live(users)
                fresh = True
                continue
            steps.append(stats)
            say(self.progress, f"profile: sweep concurrency {users}: {describe_step(stats)} ({len(rounds)} rounds, {verdict})")
            broken = past_the_limits(stats, self.spec.latency_objective_ms)
            if broken:
                reason = broken
                break
            if verdict == FLAT:
                best = sorted(best_rounds)[len(best_rounds) // 2]
                level = sorted(rounds)[len(rounds) // 2]
                flat = (
                    f"throughput flattened at concurrency {users}: median round {level:.1f} req/s vs {best:.1f} at concurrency "
                    f"{levels[best_index]} ({(level / best - 1) if best else 0:+.0%}; a rise must clear {MIN_GAIN:.0%} beyond the rounds' spread)"
                )
                reason = f"{reason}; {flat}" if index == len(levels) - 1 else flat
                break
            best_rounds, best_index = rounds, len(steps) - 1
            index += 1
        return steps, reason, steps[: best_index + 1] if steps else steps

    def _level(self, users: int, best_rounds: list[float], fresh: bool) -> tuple[LoadStats, list[float], str]:
        """Measure one level in rounds until `gain_verdict` decides or `step_s` is up."""
        assert self.live is not None
        self.live.set_users(users)
        length = self.settings.sweep_round_s
        begin = math.ceil((time.time() + (self.settings.warmup_s if fresh else self.settings.settle_s)) / length) * length
        rounds: list[float] = []
        end, verdict = begin, RISING
        while True:
            end += length
            self.live.wait_covered(end)
            rounds.append(summarize(self.live.records(), end - length, end, users).qps)
            measured = end - begin
            if measured + 1e-9 < self.settings.min_step_s:
                continue
            final = measured + length > self.settings.step_s + 1e-9
            if not best_rounds:
                verdict = RISING
                break
            verdict = gain_verdict(rounds, best_rounds, final=final)
            if verdict != "undecided":
                break
        self.phases.append((f"sweep {users}", begin, end))
        return self._window(begin, end, users), rounds, verdict

    def steady(self, users: int, sampler: Sampler, cores: Optional[float]) -> SteadyPhase:
        """Hold `users` until the CPU and memory estimates settle (at least `MIN_STEADY_S`, at most `duration_s`)."""
        assert self.live is not None
        self.live.set_users(users)
        duration = self.spec.duration_s
        begin = time.time() + self.settings.settle_s
        shortest = min(duration, max(MIN_STEADY_S, 3 * self.round_s))
        end = begin
        while True:
            end = min(end + 1.0, begin + duration)
            sleep_until(end + 0.05)
            # a sample reads the second before it: the first one inside the phase is a second in
            window = [s for s in sampler.snapshot() if begin + 1.0 <= s.t <= end + 0.05]
            stability = self._stability(window, remaining=begin + duration - end, cores=cores)
            if end >= begin + duration - 1e-9 or (end - begin >= shortest and stability.stable):
                break
        self.phases.append(("steady", begin, end))
        stats = self._window(begin, end, users)
        rounds = split_rounds(self.live.records(), begin, end, self.round_s, users)
        return SteadyPhase(begin, end, stats, rounds, window, stability)

    def _stability(self, window: list[Sample], remaining: float, cores: Optional[float]) -> Stability:
        return assess(
            [s.t for s in window], [s.cpu for s in window], [s.memory for s in window],
            margin=self.spec.margin, min_cpu=self.spec.min_cpu, min_memory_gb=self.spec.min_memory_gb,
            remaining_s=remaining, cpu_cap=cores,
        )  # fmt: skip

    def verify_round_s(self, qps: float) -> float:
        """Verification rounds: long enough for `ROUND_REQUESTS` requests, at least 1 s, at most `round_s`."""
        return min(self.round_s, max(1.0, ROUND_REQUESTS / qps)) if qps > 0 else self.round_s

    def verify(
        self, first: rec.Recommendation, users: int, peak_memory: float = 0.0, qps: float = 0.0
    ) -> tuple[Verification, rec.Recommendation]:
        """Try the recommendation under its limits against the running service (`verification.py`)."""
        if not self.settings.verify:
            return Verification("unverified", "verification was turned off"), first
        if getattr(self.service, "target", "") != "docker" or self.target is None or getattr(self.target, "name", "") != "docker":
            return (
                Verification(
                    "unverified",
                    f"the {getattr(self.service, 'target', '?')} target cannot enforce CPU or memory limits, so the "
                    "recommendation cannot be tried under them here; profile with the Docker target to verify it",
                ),
                first,
            )
        verifier = Verifier(
            project=self.project, deployment=self.deployment, service=self.service, target=self.target,
            max_raises=self.settings.max_raises, round_s=self.verify_round_s(qps), live=self.live, end_live=self.end_live,
            run_load=self._run, peak_memory_bytes=peak_memory, phases=self.phases, warnings=self.warnings,
            progress=self.progress,
        )  # fmt: skip
        return verifier.verify(first, users)

    def confirm(self, users: int) -> tuple[LoadStats, list[Round]]:
        """`confirm_s` more of the load at `users`: on the live load when it still runs, else a run of its own."""
        if self.live is None:
            again = self._run(self.service, users, self.confirm_s, "confirm")
            return again.stats(), again.rounds(self.round_s)
        self.live.set_users(users)
        begin = time.time() + self.settings.settle_s
        end = begin + self.confirm_s
        sleep_until(end)
        self.phases.append(("confirm", begin, end))
        return self._window(begin, end, users), split_rounds(self.live.records(), begin, end, self.round_s, users)
