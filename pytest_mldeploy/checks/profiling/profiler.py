"""Profile a deployment: sweep concurrency, hold the knee steady, size CPU and memory, verify, gate.

`profile_service` works on a running service; `profile_deployment` deploys one first (and
removes it after). The phases, in order:
1. sweep: 1, 2, 4, ... users for `step_s` each until throughput stops rising or the latency
   objective breaks (`sweep.py`);
2. steady: `profile.duration_s` at the chosen concurrency, sampled once a second (`sampling.py`);
3. recommendation from the steady samples (`recommend.py`);
4. closed loop: a second container under the recommended limits and the running service (the
   reference) take the steady load in alternating rounds; the limits hold, do not hold (the
   recommendation is raised and tried again) or the rounds are too noisy to say (inconclusive,
   a warning) (`noise.py`; Docker target only);
5. gates (`gates.py`, judged against the rounds' spread), then profile.json and profile.html (`report.py`).
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from pytest_mldeploy.checks.profiling import noise
from pytest_mldeploy.checks.profiling import recommend as rec
from pytest_mldeploy.checks.profiling.gates import ROUND_GATES, GateResult, confirm_gates, evaluate_gates, stats_figures
from pytest_mldeploy.checks.profiling.loadgen import LoadRun, LocustLoad
from pytest_mldeploy.checks.profiling.sampling import Sample, Sampler, sampler_for
from pytest_mldeploy.checks.profiling.stats import LoadStats, Round
from pytest_mldeploy.checks.profiling.sweep import choose_level, concurrency_levels, generator_saturated, next_decision
from pytest_mldeploy.checks.profiling.workload import workload_bodies, write_bodies
from pytest_mldeploy.errors import ServiceError

Progress = Callable[[str], None]

#: Verdicts of one closed-loop attempt.
HELD, DID_NOT_HOLD, INCONCLUSIVE, NOT_RUN = "held", "did not hold", "inconclusive", "could not run"


@dataclass
class ProfileSettings:
    """How the load is shaped beyond `profile:` in mldeploy.yaml (tests shorten these)."""

    step_s: float = 3.0
    warmup_s: float = 1.0
    #: Locust processes; None picks 1 and adds workers when one process saturates a core.
    processes: Optional[int] = None
    verify: bool = True
    max_raises: int = 2
    #: Length of the rounds the steady load is judged in, and the verification alternates in;
    #: None: a tenth of `profile.duration_s`, between 1 and 4 s.
    round_s: Optional[float] = None

    def rounds_of(self, duration_s: float) -> float:
        return self.round_s or min(max(duration_s / 10.0, 1.0), 4.0)


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

    @property
    def held(self) -> bool:
        return self.verdict == HELD

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "memoryInGb": self.memory_gb,
            "verdict": self.verdict,
            "held": self.held,
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


def _on_a_free_port(deployment: Any) -> Any:
    """The deployment without a fixed `port`: the verification runs beside the service it verifies."""
    if getattr(deployment, "port", None) and hasattr(deployment, "model_copy"):
        return deployment.model_copy(update={"port": None})
    return deployment


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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

    def sweep(self) -> tuple[list[LoadStats], str]:
        steps: list[LoadStats] = []
        ceiling = self.max_users
        reason = f"reached max_concurrency {ceiling}"
        if ceiling < self.spec.max_concurrency:
            reason = (f"reached {ceiling} concurrent requests, what max_concurrent_requests "
                      f"{self.deployment.max_concurrent_requests} admits (2 per allowed request, as Azure; more get 429)")
            self.warnings.append(f"the load stopped at {ceiling} concurrent requests: max_concurrent_requests "
                                 f"{self.deployment.max_concurrent_requests} answers 429 beyond that (as Azure's "
                                 "max_concurrent_requests_per_instance does); raise it to profile higher concurrency")
        for users in concurrency_levels(ceiling):
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

    def verify(self, first: rec.Recommendation, users: int) -> tuple[Verification, rec.Recommendation]:
        """Try the recommendation under its limits against the running service; raise it while it clearly does not hold."""
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
        for tried in range(self.settings.max_raises + 1):
            attempt = self._attempt(current, users, tried)
            attempts.append(attempt)
            limits = f"{current.cpu:g} cores and {current.memory_gb:g} GB"
            figures = f" ({attempt.comparison.figures})" if attempt.comparison else ""
            if attempt.verdict == HELD:
                verdict = "verified" if tried == 0 else "raised"
                reason = (
                    f"under {limits} the service held the load{figures}"
                    + ("" if tried == 0 else f" after raising the recommendation {tried} time(s) from {first.cpu:g} cores / {first.memory_gb:g} GB")
                )
                return Verification(verdict, reason, attempts), current
            if attempt.verdict == NOT_RUN:
                return Verification("unverified", f"the verification under {limits} could not run: {'; '.join(attempt.problems)}", attempts), current
            if attempt.verdict == INCONCLUSIVE:
                return (
                    Verification(
                        "inconclusive",
                        f"under {limits} the rounds were too noisy to tell whether the service held the load: "
                        f"{'; '.join(attempt.problems)}{figures}; the recommendation is kept, re-profile on a quieter machine to decide",
                        attempts,
                    ),
                    current,
                )
            _say(self.progress, f"profile: {limits} did not hold: {'; '.join(attempt.problems)}")
            if tried < self.settings.max_raises:
                bigger = rec.raised(current)
                if (bigger.cpu, bigger.memory_gb) == (current.cpu, current.memory_gb):
                    break
                current = bigger
        cap = f" (CPU is capped at the host's {current.cpu_cap:g} cores)" if current.cpu_cap is not None and current.cpu >= current.cpu_cap else ""
        return (
            Verification(
                "failed",
                f"the service did not hold the load even under {current.cpu:g} cores and {current.memory_gb:g} GB{cap} "
                f"({'; '.join(attempts[-1].problems)}); size it by hand and re-profile",
                attempts,
            ),
            current,
        )

    def _attempt(self, limits: rec.Recommendation, users: int, tried: int) -> Attempt:
        """Start a container under `limits` beside the running service and alternate the load between them."""
        from pytest_mldeploy.core.service import ServiceFailed

        attempt = Attempt(limits.cpu, limits.memory_gb)
        _say(self.progress, f"profile: verifying under {limits.cpu:g} cores / {limits.memory_gb:g} GB (a second container, in alternating rounds)")
        try:
            service = self.target.deploy(
                _on_a_free_port(self.deployment), self.project, resources=_resources(limits.cpu, limits.memory_gb),
                name=f"{self.deployment.name}-verify{tried + 1}",
            )  # fmt: skip
        except ServiceFailed as exc:  # it started and then failed under these limits (OOM-killed, ...): too small
            attempt.verdict = DID_NOT_HOLD
            attempt.problems.append(f"the service did not start under these limits: {_first_line(exc)}")
            return attempt
        except Exception as exc:  # the engine refused to start it: nothing about the limits was learned
            attempt.problems.append(f"the container could not be started: {_first_line(exc)}")
            return attempt
        try:
            attempt.inspected_cpu, attempt.inspected_memory_gb = _inspected_limits(service)
            run = self._run(self.service, users, self.spec.duration_s, f"verify {tried + 1}", alternate=service)
            attempt.rounds = run.rounds()
            attempt.stats, attempt.reference = run.stats(target=1), run.stats(target=0)
            attempt.comparison = noise.compare_rounds(attempt.rounds, self.spec.latency_objective_ms)
            attempt.problems = list(attempt.comparison.problems)
            attempt.verdict = {noise.PASS: HELD, noise.FAIL: DID_NOT_HOLD}.get(attempt.comparison.verdict, INCONCLUSIVE)
            state = service.refresh_state()
            if str(getattr(state, "value", state)) != "Healthy":
                attempt.verdict = DID_NOT_HOLD
                attempt.problems.append(f"the service became {getattr(state, 'value', state)}: {service.reason}")
        except Exception as exc:  # the load could not run: a warning about the verification, not a failed profile
            attempt.verdict = NOT_RUN
            attempt.problems.append(f"the load could not run: {_first_line(exc)}")
        finally:
            try:
                service.delete()
            except Exception as exc:
                self.warnings.append(f"the verification container {service.describe()} could not be removed: {_first_line(exc)}")
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
        steady_rounds = steady_run.rounds(profiler.round_s)
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
        cores = host_cores(target if target is not None else service)
        limit_cores = getattr(getattr(service, "resources", None), "cpu", None) if getattr(service, "target", "") == "docker" else None
        first = rec.fit_to_host(first, cores, limit_cores)
        _say(progress, f"profile: recommended {first.cpu:g} cores, {first.memory_gb:g} GB ({first.basis})")
        if first.cpu_note:
            _say(progress, f"profile: {first.cpu_note}")
        growth = rec.memory_growth([s.t for s in window], [s.memory for s in window])
        verification, final = profiler.verify(first, users)
        _say(progress, f"profile: verification {verification.verdict}: {verification.reason}")
        warnings = profiler.warnings
        if first.cpu_note:
            warnings.append(first.cpu_note)
        if verification.verdict in ("failed", "inconclusive") or (verification.verdict == "unverified" and verification.attempts):
            warnings.append(f"verification {verification.verdict}: {verification.reason}")
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
            sample_body=bodies[0][0],
            sample_content_type=bodies[0][1],
            gate_rounds=steady_rounds + [r for a in verification.attempts for r in a.rounds if r.target == 0],
            host_cores=cores,
        )
        from pytest_mldeploy.checks.profiling.report import figures_of

        result.gates = evaluate_gates(deployment.gates, figures_of(result), [r.stats for r in result.gate_rounds])
        if any(g.verdict == "fail" and g.gate in ROUND_GATES for g in result.gates):
            # A failure judged on one stretch of time, which a burst on the machine can cover whole:
            # a later stretch must fail it too, or it is inconclusive.
            _say(progress, f"profile: a gate failed; confirming with {profiler.confirm_s:g} s more at concurrency {users}")
            try:
                again = profiler._run(service, users, profiler.confirm_s, "confirm")
            except ServiceError as exc:
                warnings.append(f"the confirmation of a failed gate could not run: {str(exc).splitlines()[0]}")
            else:
                rounds = again.rounds(profiler.round_s)
                result.gate_rounds += rounds
                result.gates = confirm_gates(
                    result.gates, evaluate_gates(deployment.gates, stats_figures(again.stats()), [r.stats for r in rounds])
                )
            result.phases = profiler.phases
        warnings.extend(f"gate inconclusive: {g.message}" for g in result.gates if g.inconclusive)
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
