"""The closed loop: does the service hold the steady load under the recommended limits?

The recommendation and the service's own limits (the reference) take the steady load in
alternating rounds, judged by `noise.compare_rounds`; a recommendation that clearly does not
hold is raised and tried again. Two ways to put the service under the limits:

- **in place** (the usual way on Docker): the running container's limits are switched at every
  round boundary with `docker update --cpus --memory`, reference limits in even rounds and the
  recommendation in odd ones, under the load that is already running (no container start, no
  load-generator start), and the attempt ends as soon as the rounds decide (at least
  `MIN_PAIRS` pairs, at most `duration_s`). The container's own limits are put back afterwards.
- **a second container** started under the limits beside the running service, the load
  alternating between the two, when the limits cannot be changed in place: the running
  container has no limit to return to, the recommendation would set memory below what the
  service has used (the kernel would kill the reference), or the engine refused the update.
  The verification says which way it went and why.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Optional

from pytest_mldeploy.checks.profiling import noise
from pytest_mldeploy.checks.profiling import recommend as rec
from pytest_mldeploy.checks.profiling.loadgen import LiveLoad, LoadRun, sleep_until
from pytest_mldeploy.checks.profiling.result import DID_NOT_HOLD, HELD, INCONCLUSIVE, NOT_RUN, Attempt, Verification
from pytest_mldeploy.checks.profiling.stats import split_rounds, summarize

Progress = Callable[[str], None]
#: How an attempt put the service under the limits.
IN_PLACE, NEW_CONTAINER = "in place", "new container"
#: An in-place attempt judges after at least this many pairs of rounds ...
MIN_PAIRS = 3
#: ... and may set memory no lower than the most the service used times this.
MEMORY_HEADROOM = 1.1


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class LimitSwitch:
    """Sets a running container's CPU and memory limits in place, as `docker update --cpus --memory` does.

    The docker SDK's `container.update` cannot change CPUs of a container created with
    `--cpus` (NanoCpus; the engine refuses a CPU quota beside it), so the update goes through the
    SDK's API client with the body `docker update` itself sends.
    """

    def __init__(self, client: Any, container_id: str, cpu: float, memory_bytes: int) -> None:
        self.client, self.container_id = client, container_id
        self.reference = (cpu, memory_bytes)

    def apply(self, cpu: float, memory_bytes: int) -> None:
        api = self.client.api
        body = {"NanoCpus": int(round(cpu * 1e9)), "Memory": int(memory_bytes), "MemorySwap": int(memory_bytes)}
        response = api._post_json(api._url("/containers/{0}/update", self.container_id), data=body)
        api._raise_for_status(response)

    def restore(self) -> None:
        self.apply(*self.reference)

    def inspected(self) -> tuple[Optional[float], Optional[float]]:
        """CPU (cores) and memory (GB) the container runs under now, from `docker inspect`."""
        return limits_of(self.client.api.inspect_container(self.container_id))


def limit_switch(service: Any, target: Any, memory_gb: float, peak_memory_bytes: float) -> tuple[Optional[LimitSwitch], str]:
    """A `LimitSwitch` for the running service when `memory_gb` can be set in place, else None and why not."""
    container_id = getattr(service, "container_id", None)
    if not container_id or getattr(target, "name", "") != "docker":
        return None, "the running service is not a container this profile can update"
    try:
        cpu, memory_now = limits_of(target.client.api.inspect_container(container_id))
    except Exception as exc:
        return None, f"the running container could not be inspected ({first_line(exc)})"
    if not cpu or not memory_now:
        return None, "the running container has no CPU or memory limit to return to after the rounds"
    if memory_gb * rec.GIB < MEMORY_HEADROOM * peak_memory_bytes:
        return None, (
            f"{memory_gb:g} GB is below what the running service has used ({peak_memory_bytes / rec.GIB:.2f} GB) "
            f"with {MEMORY_HEADROOM - 1:.0%} headroom; lowering it in place could kill the reference"
        )
    return LimitSwitch(target.client, container_id, cpu, int(round(memory_now * rec.GIB))), ""


class Verifier:
    """Tries a recommendation (raising it while it clearly does not hold) against the running service.

    `live` is the load that is already running at the steady concurrency (None when there is
    none); `end_live()` stops it before a second container is loaded; `run_load(service, users,
    seconds, label, alternate)` runs one alternating load for that way.
    """

    def __init__(
        self, *, project: Any, deployment: Any, service: Any, target: Any, max_raises: int, round_s: float,
        live: Optional[LiveLoad], end_live: Callable[[], None], run_load: Callable[..., LoadRun],
        peak_memory_bytes: float, phases: list, warnings: list[str], progress: Optional[Progress],
    ) -> None:  # fmt: skip
        self.project, self.deployment, self.service, self.target = project, deployment, service, target
        self.max_raises, self.round_s, self.live, self.end_live, self.run_load = max_raises, round_s, live, end_live, run_load
        self.peak_memory_bytes, self.phases, self.warnings, self.progress = peak_memory_bytes, phases, warnings, progress
        self.spec = deployment.profile
        #: Why the engine refused an in-place update (then a second container is tried).
        self._refused = ""

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def verify(self, first: rec.Recommendation, users: int) -> tuple[Verification, rec.Recommendation]:
        """Try `first` under its limits; raise it while it clearly does not hold (up to `max_raises` times)."""
        attempts: list[Attempt] = []
        current = first
        for tried in range(self.max_raises + 1):
            attempt = self._attempt(current, users, tried)
            attempts.append(attempt)
            limits = f"{current.cpu:g} cores and {current.memory_gb:g} GB"
            figures = f" ({attempt.comparison.figures})" if attempt.comparison else ""
            how = f"; {attempt.how}" if attempt.how else ""
            if attempt.verdict == HELD:
                verdict = "verified" if tried == 0 else "raised"
                reason = (
                    f"under {limits} the service held the load{figures}"
                    + ("" if tried == 0 else f" after raising the recommendation {tried} time(s) from {first.cpu:g} cores / {first.memory_gb:g} GB")
                    + how
                )
                return Verification(verdict, reason, attempts), current
            if attempt.verdict == NOT_RUN:
                return Verification("unverified", f"the verification under {limits} could not run: {'; '.join(attempt.problems)}{how}", attempts), current
            if attempt.verdict == INCONCLUSIVE:
                return (
                    Verification(
                        "inconclusive",
                        f"under {limits} the rounds were too noisy to tell whether the service held the load: "
                        f"{'; '.join(attempt.problems)}{figures}; the recommendation is kept, re-profile on a quieter machine to decide{how}",
                        attempts,
                    ),
                    current,
                )
            self._say(f"profile: {limits} did not hold: {'; '.join(attempt.problems)}")
            if tried < self.max_raises:
                bigger = rec.raised(current)
                if (bigger.cpu, bigger.memory_gb) == (current.cpu, current.memory_gb):
                    break
                current = bigger
        cap = f" (CPU is capped at the host's {current.cpu_cap:g} cores)" if current.cpu_cap is not None and current.cpu >= current.cpu_cap else ""
        return (
            Verification(
                "failed",
                f"the service did not hold the load even under {current.cpu:g} cores and {current.memory_gb:g} GB{cap} "
                f"({'; '.join(attempts[-1].problems)}); size it by hand and re-profile"
                + (f"; {attempts[-1].how}" if attempts[-1].how else ""),
                attempts,
            ),
            current,
        )

    def _attempt(self, limits: rec.Recommendation, users: int, tried: int) -> Attempt:
        switch, why_not = limit_switch(self.service, self.target, limits.memory_gb, self.peak_memory_bytes)
        if switch is not None and self.live is None:
            switch, why_not = None, "no load was running to switch the limits under"
        if switch is not None:
            attempt = self._in_place(switch, limits, users, tried)
            if attempt is not None:
                return attempt
            why_not = self._refused
        self.end_live()
        self.live = None
        attempt = self._new_container(limits, users, tried)
        attempt.how = f"a second container was started under the limits: {why_not}"
        return attempt

    def _in_place(self, switch: LimitSwitch, limits: rec.Recommendation, users: int, tried: int) -> Optional[Attempt]:
        """Alternate the running container's limits round by round under the running load; None when
        the engine refused the first update (nothing was learned: a second container is tried)."""
        assert self.live is not None
        live, length = self.live, self.round_s
        attempt = Attempt(limits.cpu, limits.memory_gb, method=IN_PLACE, how="the running container's limits were switched in place (docker update) round by round")
        candidate = (limits.cpu, int(round(limits.memory_gb * rec.GIB)))
        self._say(f"profile: verifying under {limits.cpu:g} cores / {limits.memory_gb:g} GB (docker update in place, in alternating rounds)")
        first = math.ceil((time.time() + 0.1) / length)
        first += first % 2  # even rounds: the reference limits the container has now
        max_pairs = max(MIN_PAIRS, int(self.spec.duration_s // (2 * length)))
        start, end = first * length, first * length
        try:
            for k in range(first + 1, first + 2 * max_pairs + 1):
                sleep_until(k * length)
                end = k * length
                if k % 2:
                    try:
                        switch.apply(*candidate)
                    except Exception as exc:
                        if k == first + 1:
                            self._refused = f"the engine refused to update the running container ({first_line(exc)})"
                            return None
                        raise
                    if k == first + 1:
                        attempt.inspected_cpu, attempt.inspected_memory_gb = switch.inspected()
                    continue
                switch.restore()
                if (k - first) // 2 >= MIN_PAIRS and self._decided(start, end, length, users, deadline=(k + 1) * length - 0.15):
                    break
            live.wait_covered(end + 0.25)
        except Exception as exc:  # the load or the engine failed midway: a warning about the verification
            attempt.verdict = NOT_RUN
            attempt.problems.append(f"the in-place rounds could not run: {first_line(exc)}")
            return attempt
        finally:
            try:
                switch.restore()
            except Exception as exc:
                self.warnings.append(f"the running container's limits could not be put back after the verification: {first_line(exc)}")
        self.phases.append((f"verify {tried + 1}", start, end))
        records = _by_round(live.records(), start, end, length)
        attempt.rounds = split_rounds(records, start, end, length, users, alternating=True)
        attempt.stats, attempt.reference = summarize([r for r in records if r.target == 1], start, end, users), summarize(
            [r for r in records if r.target == 0], start, end, users
        )  # fmt: skip
        attempt.comparison = noise.compare_rounds(attempt.rounds, self.spec.latency_objective_ms)
        _judge(attempt, self.service)
        return attempt

    def _decided(self, start: float, end: float, length: float, users: int, deadline: float) -> bool:
        """Whether the pairs of rounds in [start, end) already pass or clearly fail; False when their
        requests are not all reported before `deadline` (the next switch of limits must not wait)."""
        assert self.live is not None
        while self.live.covered_until() < end + 0.25:
            if time.time() >= deadline:
                return False
            time.sleep(0.05)
        rounds = split_rounds(self.live.records(), start, end, length, users, alternating=True)
        return noise.compare_rounds(rounds, self.spec.latency_objective_ms).verdict in (noise.PASS, noise.FAIL)

    def _new_container(self, limits: rec.Recommendation, users: int, tried: int) -> Attempt:
        """Start a container under `limits` beside the running service and alternate the load between them."""
        from pytest_mldeploy.core.service import ServiceFailed

        attempt = Attempt(limits.cpu, limits.memory_gb, method=NEW_CONTAINER)
        self._say(f"profile: verifying under {limits.cpu:g} cores / {limits.memory_gb:g} GB (a second container, in alternating rounds)")
        try:
            service = self.target.deploy(
                _on_a_free_port(self.deployment), self.project, resources=_resources(limits.cpu, limits.memory_gb),
                name=f"{self.deployment.name}-verify{tried + 1}",
            )  # fmt: skip
        except ServiceFailed as exc:  # it started and then failed under these limits (OOM-killed, ...): too small
            attempt.verdict = DID_NOT_HOLD
            attempt.problems.append(f"the service did not start under these limits: {first_line(exc)}")
            return attempt
        except Exception as exc:  # the engine refused to start it: nothing about the limits was learned
            attempt.problems.append(f"the container could not be started: {first_line(exc)}")
            return attempt
        try:
            attempt.inspected_cpu, attempt.inspected_memory_gb = _inspected_limits(service)
            run = self.run_load(self.service, users, self.spec.duration_s, f"verify {tried + 1}", alternate=service)
            attempt.rounds = run.rounds()
            attempt.stats, attempt.reference = run.stats(target=1), run.stats(target=0)
            attempt.comparison = noise.compare_rounds(attempt.rounds, self.spec.latency_objective_ms)
            _judge(attempt, service)
        except Exception as exc:  # the load could not run: a warning about the verification, not a failed profile
            attempt.verdict = NOT_RUN
            attempt.problems.append(f"the load could not run: {first_line(exc)}")
        finally:
            try:
                service.delete()
            except Exception as exc:
                self.warnings.append(f"the verification container {service.describe()} could not be removed: {first_line(exc)}")
        return attempt


def _judge(attempt: Attempt, service: Any) -> None:
    """The attempt's verdict from its comparison, and `did not hold` when the service under the limits is not Healthy."""
    assert attempt.comparison is not None
    attempt.problems = list(attempt.comparison.problems)
    attempt.verdict = {noise.PASS: HELD, noise.FAIL: DID_NOT_HOLD}.get(attempt.comparison.verdict, INCONCLUSIVE)
    state = service.refresh_state()
    if str(getattr(state, "value", state)) != "Healthy":
        attempt.verdict = DID_NOT_HOLD
        attempt.problems.append(f"the service became {getattr(state, 'value', state)}: {service.reason}")


def _by_round(records: list, start: float, end: float, length: float) -> list:
    """The records started in [start, end), each marked with its round's side (even: 0, odd: 1)."""
    return [dataclasses.replace(r, target=int(r.start // length) % 2) for r in records if start <= r.start < end]


def _resources(cpu: float, memory_gb: float) -> Any:
    from pytest_mldeploy.core.config import Resources

    return Resources(cpu=cpu, memory_gb=memory_gb)


def _on_a_free_port(deployment: Any) -> Any:
    """The deployment without a fixed `port`: the verification runs beside the service it verifies."""
    if getattr(deployment, "port", None) and hasattr(deployment, "model_copy"):
        return deployment.model_copy(update={"port": None})
    return deployment


def limits_of(inspected: dict[str, Any]) -> tuple[Optional[float], Optional[float]]:
    """CPU (cores) and memory (GB) of a container's `docker inspect`; None for no limit."""
    host = inspected.get("HostConfig", {})
    nano, memory = host.get("NanoCpus") or 0, host.get("Memory") or 0
    return (nano / 1e9 if nano else None), (memory / rec.GIB if memory else None)


def _inspected_limits(service: Any) -> tuple[Optional[float], Optional[float]]:
    """CPU (cores) and memory (GB) the container really runs under, from `docker inspect`."""
    inspect = getattr(service, "inspect", None)
    return limits_of(inspect()) if inspect is not None else (None, None)
