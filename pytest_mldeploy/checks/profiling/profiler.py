"""Profile a deployment: sweep concurrency, hold the knee steady, size CPU and memory, verify, gate.

`profile_service` works on a running service; `profile_deployment` deploys one first (and
removes it after). The sweep, the steady phase and (on Docker) the verification run in one live
load (`loadgen.LiveLoad`) whose users change between phases, and each phase ends as soon as what
it measures is decided. The phases, in order:
1. sweep: 1, 2, 4, ... users, each level measured in short rounds until its throughput clearly
   rises over the best level so far (next level), clearly does not (the curve has flattened:
   stop), or `step_s` is up; or until the latency objective or errors break (`sweep.py`);
2. steady: at the chosen concurrency, sampled once a second (`sampling.py`), until the CPU and
   memory estimates are settled or `profile.duration_s` is up (`steady.py`);
3. recommendation from the steady samples (`recommend.py`);
4. closed loop: the recommended limits against the service's own in alternating rounds, by
   `docker update` on the running container, or a second container when that cannot be done;
   the limits hold, do not hold (the recommendation is raised and tried again) or the rounds are
   too noisy to say (inconclusive, a warning) (`verification.py`; Docker target only);
5. gates (`gates.py`, judged against the rounds' spread), then profile.json and profile.html (`report.py`).
The phases themselves run in `phases.PhaseRunner`; this module orders them, assembles what they
measured into a `ProfileResult`, words its warnings and judges the gates.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Union

from pytest_mldeploy.checks.profiling import recommend as rec
from pytest_mldeploy.checks.profiling.gates import ROUND_GATES, confirm_gates, evaluate_gates, stats_figures
from pytest_mldeploy.checks.profiling.phases import (
    MIN_STEADY_S,
    ROUND_REQUESTS,
    PhaseRunner,
    ProfileSettings,
    Progress,
    describe_step,
    host_cores,
    say,
)
from pytest_mldeploy.checks.profiling.report import figures_of, write_reports
from pytest_mldeploy.checks.profiling.result import ProfileResult
from pytest_mldeploy.checks.profiling.sampling import Sampler, sampler_for
from pytest_mldeploy.checks.profiling.sweep import choose_level, generator_saturated
from pytest_mldeploy.checks.profiling.workload import workload_bodies, write_bodies
from pytest_mldeploy.errors import ServiceError

__all__ = ["MIN_STEADY_S", "ROUND_REQUESTS", "ProfileSettings", "Progress", "host_cores", "profile_deployment", "profile_service"]


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
    settings = settings or ProfileSettings()
    started = time.time()
    spec = deployment.profile
    cores = host_cores(target if target is not None else service)
    with tempfile.TemporaryDirectory(prefix=f"mldeploy-profile-{deployment.name}-") as tmp:
        profiler = PhaseRunner(project, deployment, service, target, Path(tmp), settings, progress)
        try:
            result = _profile(profiler, started, cores)
        finally:
            profiler.end_live()
        result.generator_cpu = profiler.generator_cpu
        if generator_saturated(profiler.generator_cpu):
            result.warnings.append(
                f"the load generator used {profiler.generator_cpu:.2f} cores in one process: the throughput measured "
                "may be its ceiling rather than the service's"
            )
    result.elapsed_s = time.time() - started
    if out_dir is not None:
        result.json_path, result.html_path = write_reports(result, Path(out_dir))
    return result


def _profile(profiler: PhaseRunner, started: float, cores: Optional[float]) -> ProfileResult:
    """The phases, on a profiler whose live load the caller ends."""
    project, deployment, service, target, progress = profiler.project, profiler.deployment, profiler.service, profiler.target, profiler.progress
    spec, settings = deployment.profile, profiler.settings
    bodies, source = workload_bodies(deployment, profiler.swagger(), getattr(project.config_path, "name", "mldeploy.yaml"))
    write_bodies(bodies, profiler.bodies_path)
    say(progress, f"profile: {service.describe()}; workload: {source}")
    sampler: Sampler = sampler_for(service).start()
    try:
        sweep, sweep_reason, candidates = profiler.sweep()
        users, users_reason = choose_level(candidates, spec.latency_objective_ms)
        say(progress, f"profile: {sweep_reason}; steady phase at {users_reason}, until the CPU and memory estimates settle (at most {spec.duration_s:g} s)")
        steady = profiler.steady(users, sampler, cores)
    finally:
        samples = sampler.stop()
    say(progress, f"profile: steady: {describe_step(steady.stats)}; {steady.end - steady.start:.0f} s, {steady.stability.reason}")
    if sampler.error:
        profiler.warnings.append(f"resource sampling stopped early: {sampler.error}")
    window = steady.window
    if len(window) < 2:
        raise ServiceError(
            f"profiling: {service.describe()}: only {len(window)} resource sample(s) in the steady phase; "
            f"raise deployments.{deployment.name}.profile.duration_s (now {spec.duration_s:g} s)"
        )
    first = rec.recommend(
        [s.cpu for s in window], [s.memory for s in window],
        margin=spec.margin, min_cpu=spec.min_cpu, min_memory_gb=spec.min_memory_gb,
    )  # fmt: skip
    limit_cores = getattr(getattr(service, "resources", None), "cpu", None) if getattr(service, "target", "") == "docker" else None
    first = rec.fit_to_host(first, cores, limit_cores)
    say(progress, f"profile: recommended {first.cpu:g} cores, {first.memory_gb:g} GB ({first.basis})")
    if first.cpu_note:
        say(progress, f"profile: {first.cpu_note}")
    growth = rec.memory_growth([s.t for s in window], [s.memory for s in window])
    verification, final = profiler.verify(first, users, peak_memory=max((s.memory for s in samples), default=0.0), qps=steady.stats.qps)
    say(progress, f"profile: verification {verification.verdict}: {verification.reason}")
    warnings = profiler.warnings
    if first.cpu_note:
        warnings.append(first.cpu_note)
    if not steady.stability.stable:
        warnings.append(f"the CPU and memory estimates had not settled after the steady phase's {spec.duration_s:g} s: {steady.stability.reason}")
    if verification.verdict in ("failed", "inconclusive") or (verification.verdict == "unverified" and verification.attempts):
        warnings.append(f"verification {verification.verdict}: {verification.reason}")
    if growth.leak:
        warnings.append(growth.reason)
    if steady.stats.failures:
        warnings.append(f"{steady.stats.failures} of {steady.stats.total} requests failed in the steady phase ({steady.stats.error_rate:.1%})")
    resources = getattr(deployment, "resources", None)
    result = ProfileResult(
        deployment=deployment.name,
        target=getattr(service, "target", "?"),
        service=service.describe(),
        workload=source,
        settings={
            "duration_s": spec.duration_s, "max_concurrency": spec.max_concurrency,
            "latency_objective_ms": spec.latency_objective_ms, "margin": spec.margin, "min_cpu": spec.min_cpu,
            "min_memory_gb": spec.min_memory_gb, "step_s": settings.step_s, "min_step_s": settings.min_step_s,
            "sweep_round_s": settings.sweep_round_s, "warmup_s": settings.warmup_s, "settle_s": settings.settle_s,
        },  # fmt: skip
        current_cpu=getattr(resources, "cpu", None),
        current_memory_gb=getattr(resources, "memory_gb", None),
        sweep=sweep,
        sweep_reason=sweep_reason,
        concurrency=users,
        concurrency_reason=users_reason,
        steady=steady.stats,
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
        gate_rounds=steady.rounds + [r for a in verification.attempts for r in a.rounds if r.target == 0],
        host_cores=cores,
        stability=steady.stability,
    )
    result.gates = evaluate_gates(deployment.gates, figures_of(result), [r.stats for r in result.gate_rounds])
    if any(g.verdict == "fail" and g.gate in ROUND_GATES for g in result.gates):
        # A failure judged on one stretch of time, which a burst on the machine can cover whole:
        # a later stretch must fail it too, or it is inconclusive.
        say(progress, f"profile: a gate failed; confirming with {profiler.confirm_s:g} s more at concurrency {users}")
        try:
            again, rounds = profiler.confirm(users)
        except ServiceError as exc:
            warnings.append(f"the confirmation of a failed gate could not run: {str(exc).splitlines()[0]}")
        else:
            result.gate_rounds += rounds
            result.gates = confirm_gates(result.gates, evaluate_gates(deployment.gates, stats_figures(again), [r.stats for r in rounds]))
        result.phases = profiler.phases
    warnings.extend(f"gate inconclusive: {g.message}" for g in result.gates if g.inconclusive)
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
        say(progress, f"profile: deploying '{deployment.name}' on the {target.name} target")
        service = target.deploy(deployment, project)
    try:
        return profile_service(project, deployment, service, out_dir, target=target, settings=settings, progress=progress)
    finally:
        if own:
            service.delete()
