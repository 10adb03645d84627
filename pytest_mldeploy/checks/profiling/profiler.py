"""Profile a deployment: sweep concurrency, hold the knee steady, size CPU and memory, verify, gate.

`profile_service` works on a running service; `profile_deployment` deploys one first (and
removes it after). The phases, in order:
1. sweep: 1, 2, 4, ... users for `step_s` each until throughput stops rising or the latency
   objective breaks (`sweep.py`);
2. steady: `profile.duration_s` at the chosen concurrency, sampled once a second (`sampling.py`);
3. recommendation from the steady samples (`recommend.py`);
4. closed loop: the service restarted under the recommended limits replays the steady load and
   must hold throughput and p95; otherwise the recommendation is raised (Docker target only);
5. gates (`gates.py`), then profile.json and profile.html (`report.py`).
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from pytest_mldeploy.checks.profiling import recommend as rec
from pytest_mldeploy.checks.profiling.gates import GateResult, evaluate_gates
from pytest_mldeploy.checks.profiling.loadgen import LoadRun, LocustLoad
from pytest_mldeploy.checks.profiling.sampling import Sample, Sampler, sampler_for
from pytest_mldeploy.checks.profiling.stats import LoadStats
from pytest_mldeploy.checks.profiling.sweep import choose_level, concurrency_levels, generator_saturated, next_decision
from pytest_mldeploy.checks.profiling.workload import workload_bodies, write_bodies
from pytest_mldeploy.errors import ServiceError

Progress = Callable[[str], None]


@dataclass
class ProfileSettings:
    """How the load is shaped beyond `profile:` in mldeploy.yaml (tests shorten these)."""

    step_s: float = 3.0
    warmup_s: float = 1.0
    #: Locust processes; None picks 1 and adds workers when one process saturates a core.
    processes: Optional[int] = None
    verify: bool = True
    max_raises: int = 2


@dataclass
class Attempt:
    """One closed-loop try: the limits, what the container really got, the load it held or not."""

    cpu: float
    memory_gb: float
    stats: Optional[LoadStats] = None
    problems: list[str] = field(default_factory=list)
    inspected_cpu: Optional[float] = None
    inspected_memory_gb: Optional[float] = None

    @property
    def held(self) -> bool:
        return self.stats is not None and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "memoryInGb": self.memory_gb,
            "held": self.held,
            "problems": self.problems,
            "inspectedCpu": self.inspected_cpu,
            "inspectedMemoryInGb": self.inspected_memory_gb,
            "stats": self.stats.to_dict() if self.stats else None,
        }


@dataclass
class Verification:
    """The closed loop's verdict: verified, raised (verified after raising), failed, or unverified."""

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
    json_path: Optional[Path] = None
    html_path: Optional[Path] = None
    #: One body of the workload, for the `curl` line of a failure report.
    sample_body: Optional[bytes] = None

    @property
    def gates_passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]


def _say(progress: Optional[Progress], line: str) -> None:
    if progress is not None:
        progress(line)


def _describe_step(stats: LoadStats) -> str:
    return (
        f"{stats.qps:.1f} req/s, p50 {stats.latency_p50_ms:.1f} ms, p95 {stats.latency_p95_ms:.1f} ms, "
        f"errors {stats.error_rate:.1%}"
    )


def _max_processes() -> int:
    """Extra load processes only help when the service keeps cores to itself: half the machine, at most 4."""
    cores = os.cpu_count() or 1
    return max(1, min(cores // 2, 4)) if cores >= 4 else 1


def _resources(cpu: float, memory_gb: float) -> Any:
    from pytest_mldeploy.core.config import Resources

    return Resources(cpu=cpu, memory_gb=memory_gb)


def _inspected_limits(service: Any) -> tuple[Optional[float], Optional[float]]:
    """CPU (cores) and memory (GB) the container really runs under, from `docker inspect`."""
    inspect = getattr(service, "inspect", None)
    if inspect is None:
        return None, None
    host = inspect().get("HostConfig", {})
    nano, memory = host.get("NanoCpus") or 0, host.get("Memory") or 0
    return (nano / 1e9 if nano else None), (memory / rec.GIB if memory else None)


class _Profiler:
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

    def swagger(self) -> Any:
        """The service's swagger document when the workload needs its example; None otherwise."""
        from pytest_mldeploy.checks.client import ScoringClient

        if getattr(self.deployment.profile, "requests", None):
            return None
        with ScoringClient.from_service(self.service) as client:
            try:
                return client.swagger()
            except Exception as exc:
                raise ServiceError(f"profiling: {self.service.describe()}: GET /swagger.json failed ({exc})") from None

    def _load_for(self, service: Any) -> LocustLoad:
        return LocustLoad(
            service.base_url,
            self.bodies_path,
            self.workdir,
            key=(service.keys[0] if service.keys else None),
            processes=self.processes,
            request_timeout_s=max(float(getattr(self.deployment, "scoring_timeout_ms", 60000)) / 1000 + 5, 10),
        )

    def _run(self, service: Any, users: int, seconds: float, label: str) -> LoadRun:
        run = self._load_for(service).run(users, seconds, self.settings.warmup_s)
        self.generator_cpu = max(self.generator_cpu, run.generator_cpu)
        self.phases.append((label, run.start, run.end))
        return run

    def sweep(self) -> tuple[list[LoadStats], str]:
        steps: list[LoadStats] = []
        reason = f"reached max_concurrency {self.spec.max_concurrency}"
        for users in concurrency_levels(self.spec.max_concurrency):
            run = self._run(self.service, users, self.settings.step_s, f"sweep {users}")
            while (
                self.settings.processes is None
                and generator_saturated(run.generator_cpu)
                and self.processes < _max_processes()
            ):
                self.processes = min(self.processes * 2, _max_processes())
                _say(self.progress, f"profile: the load generator saturated a core; retrying with {self.processes} Locust processes")
                self.phases.pop()
                run = self._run(self.service, users, self.settings.step_s, f"sweep {users}")
            stats = run.stats()
            steps.append(stats)
            _say(self.progress, f"profile: sweep concurrency {users}: {_describe_step(stats)}")
            decision = next_decision(steps, self.spec.latency_objective_ms)
            if decision.stop:
                reason = decision.reason
                break
        return steps, reason

    def verify(self, first: rec.Recommendation, steady: LoadStats, users: int) -> tuple[Verification, rec.Recommendation]:
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
        attempts: list[Attempt] = []
        current = first
        for round_ in range(self.settings.max_raises + 1):
            attempt = self._attempt(current, steady, users, round_)
            attempts.append(attempt)
            if attempt.held:
                verdict = "verified" if round_ == 0 else "raised"
                reason = (
                    f"under {current.cpu:g} cores and {current.memory_gb:g} GB the service held the load"
                    + ("" if round_ == 0 else f" after raising the recommendation {round_} time(s) from {first.cpu:g} cores / {first.memory_gb:g} GB")
                )
                return Verification(verdict, reason, attempts), current
            _say(self.progress, f"profile: {current.cpu:g} cores / {current.memory_gb:g} GB did not hold: {'; '.join(attempt.problems)}")
            if round_ < self.settings.max_raises:
                current = rec.raised(current)
        return (
            Verification(
                "failed",
                f"the service did not hold the load even under {current.cpu:g} cores and {current.memory_gb:g} GB "
                f"({'; '.join(attempts[-1].problems)}); size it by hand and re-profile",
                attempts,
            ),
            current,
        )

    def _attempt(self, limits: rec.Recommendation, steady: LoadStats, users: int, round_: int) -> Attempt:
        attempt = Attempt(limits.cpu, limits.memory_gb)
        _say(self.progress, f"profile: verifying under {limits.cpu:g} cores / {limits.memory_gb:g} GB (restarting the service)")
        try:
            service = self.target.deploy(
                self.deployment, self.project, resources=_resources(limits.cpu, limits.memory_gb),
                name=f"{self.deployment.name}-verify{round_ + 1}",
            )  # fmt: skip
        except ServiceError as exc:
            attempt.problems.append(f"the service did not start under these limits: {str(exc).splitlines()[0]}")
            return attempt
        try:
            attempt.inspected_cpu, attempt.inspected_memory_gb = _inspected_limits(service)
            run = self._run(service, users, self.spec.duration_s, f"verify {round_ + 1}")
            attempt.stats = run.stats()
            attempt.problems = rec.holds(steady, attempt.stats, self.spec.latency_objective_ms)
            state = service.refresh_state()
            if str(state) != "Healthy":
                attempt.problems.append(f"the service became {state}: {service.reason}")
        finally:
            service.delete()
        return attempt


def profile_service(
    project: Any,
    deployment: Any,
    service: Any,
    out_dir: Optional[Path],
    *,
    target: Any = None,
    settings: Optional[ProfileSettings] = None,
    progress: Optional[Progress] = None,
) -> ProfileResult:
    """Profile a running `service` of `deployment`; write profile.json and profile.html to `out_dir` (when given)."""
    from pytest_mldeploy.checks.profiling.report import write_reports

    settings = settings or ProfileSettings()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix=f"mldeploy-profile-{deployment.name}-") as tmp:
        profiler = _Profiler(project, deployment, service, target, Path(tmp), settings, progress)
        bodies, source = workload_bodies(deployment, profiler.swagger(), getattr(project.config_path, "name", "mldeploy.yaml"))
        write_bodies(bodies, profiler.bodies_path)
        _say(progress, f"profile: {service.describe()}; workload: {source}")
        sampler: Sampler = sampler_for(service).start()
        try:
            sweep, sweep_reason = profiler.sweep()
            users, users_reason = choose_level(sweep, deployment.profile.latency_objective_ms)
            _say(progress, f"profile: {sweep_reason}; steady phase at {users_reason}, {deployment.profile.duration_s:g} s")
            steady_run = profiler._run(service, users, deployment.profile.duration_s, "steady")
        finally:
            samples = sampler.stop()
        steady = steady_run.stats()
        _say(progress, f"profile: steady: {_describe_step(steady)}")
        if sampler.error:
            profiler.warnings.append(f"resource sampling stopped early: {sampler.error}")
        window = [s for s in samples if steady_run.start <= s.t <= steady_run.end]
        if len(window) < 2:
            raise ServiceError(
                f"profiling: {service.describe()}: only {len(window)} resource sample(s) in the steady phase; "
                f"raise deployments.{deployment.name}.profile.duration_s (now {deployment.profile.duration_s:g} s)"
            )
        spec = deployment.profile
        first = rec.recommend(
            [s.cpu for s in window], [s.memory for s in window],
            margin=spec.margin, min_cpu=spec.min_cpu, min_memory_gb=spec.min_memory_gb,
        )  # fmt: skip
        _say(progress, f"profile: recommended {first.cpu:g} cores, {first.memory_gb:g} GB ({first.basis})")
        growth = rec.memory_growth([s.t for s in window], [s.memory for s in window])
        verification, final = profiler.verify(first, steady, users)
        _say(progress, f"profile: verification {verification.verdict}: {verification.reason}")
    warnings = profiler.warnings
    if growth.leak:
        warnings.append(growth.reason)
    if steady.failures:
        warnings.append(f"{steady.failures} of {steady.total} requests failed in the steady phase ({steady.error_rate:.1%})")
    if generator_saturated(profiler.generator_cpu):
        warnings.append(
            f"the load generator used {profiler.generator_cpu:.2f} cores in one process: the throughput measured "
            "may be its ceiling rather than the service's"
        )
    resources = getattr(deployment, "resources", None)
    result = ProfileResult(
        deployment=deployment.name,
        target=getattr(service, "target", "?"),
        service=service.describe(),
        workload=source,
        settings={
            "duration_s": spec.duration_s, "max_concurrency": spec.max_concurrency,
            "latency_objective_ms": spec.latency_objective_ms, "margin": spec.margin, "min_cpu": spec.min_cpu,
            "min_memory_gb": spec.min_memory_gb, "step_s": settings.step_s, "warmup_s": settings.warmup_s,
        },  # fmt: skip
        current_cpu=getattr(resources, "cpu", None),
        current_memory_gb=getattr(resources, "memory_gb", None),
        sweep=sweep,
        sweep_reason=sweep_reason,
        concurrency=users,
        concurrency_reason=users_reason,
        steady=steady,
        samples=samples,
        phases=profiler.phases,
        recommendation=final,
        initial_recommendation=first,
        verification=verification,
        growth=growth,
        gates=[],
        warnings=warnings,
        load_processes=profiler.processes,
        generator_cpu=profiler.generator_cpu,
        started_at=started,
        elapsed_s=0.0,
        sample_body=bodies[0],
    )
    from pytest_mldeploy.checks.profiling.report import figures_of

    result.gates = evaluate_gates(deployment.gates, figures_of(result))
    result.elapsed_s = time.time() - started
    if out_dir is not None:
        result.json_path, result.html_path = write_reports(result, Path(out_dir))
    return result


def profile_deployment(
    project: Any,
    deployment: Union[str, Any],
    target: Union[str, Any],
    out_dir: Optional[Path],
    *,
    service: Any = None,
    progress: Optional[Progress] = None,
    settings: Optional[ProfileSettings] = None,
) -> ProfileResult:
    """Deploy `deployment` on `target` (a Target or "auto"/"docker"/"process") unless `service` is
    given, profile it, write profile.json + profile.html to `out_dir`, and remove what it started."""
    if isinstance(deployment, str):
        deployment = project.deployment(deployment)
    if isinstance(target, str):
        from pytest_mldeploy.core.targets import get_target

        target = get_target(target, notice=progress)
    own = service is None
    if own:
        _say(progress, f"profile: deploying '{deployment.name}' on the {target.name} target")
        service = target.deploy(deployment, project)
    try:
        return profile_service(project, deployment, service, out_dir, target=target, settings=settings, progress=progress)
    finally:
        if own:
            service.delete()
