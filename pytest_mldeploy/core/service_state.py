"""How a service's state is told: pure rules over exit codes, Docker `inspect` data, GET / answers and logs.

The states are Azure ML's (`Webservice.state`). Each rule reads what one source says (a process
exit, `docker inspect`'s `State`, an HTTP probe) and returns a `StateReading` with the reason a
person needs; `Service.refresh_state` combines them. Nothing here starts or asks anything, so the
rules are tested on their own and read the same on both targets.
"""
from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Optional


class ServiceState(str, Enum):
    """Azure ML's service states (`Webservice.state`)."""

    TRANSITIONING = "Transitioning"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    FAILED = "Failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StateReading:
    """A state with the reason behind it (None when there is nothing to explain)."""

    state: ServiceState
    reason: Optional[str] = None



_TRACEBACK_START = "Traceback (most recent call last):"
_CHAIN_MARKERS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def extract_traceback(log_text: str) -> Optional[str]:
    """The last Python traceback in a log, with the tracebacks chained before it, or None.

    A `Traceback (most recent call last):` line may carry a log prefix; when the frames below it
    carry the same prefix it is skipped over, otherwise they are read as Python prints them.
    """
    lines = log_text.splitlines()
    starts = [i for i, line in enumerate(lines) if _TRACEBACK_START in line]
    if not starts:
        return None
    first = starts[-1]
    for earlier in reversed(starts[:-1]):
        between = [ln.strip() for ln in lines[_exception_line(lines, earlier) + 1 : first] if ln.strip()]
        if len(between) == 1 and any(marker in between[0] for marker in _CHAIN_MARKERS):
            first = earlier
        else:
            break
    return "\n".join(lines[first : _exception_line(lines, starts[-1]) + 1])


def _exception_line(lines: list[str], start: int) -> int:
    """Index of the `ValueError: ...` line that closes the traceback starting at `start`."""
    prefix = lines[start][: lines[start].index(_TRACEBACK_START)]
    if prefix and not (start + 1 < len(lines) and lines[start + 1].startswith(prefix)):
        prefix = ""
    for i in range(start + 1, len(lines)):
        body = lines[i][len(prefix) :] if lines[i].startswith(prefix) else lines[i]
        if body.strip() and not body.startswith(" "):
            return i
    return len(lines) - 1


def describe_exception(traceback_text: str) -> str:
    """`init() raised ValueError: boom` (or `the entry script raised ...` outside init()) for a traceback."""
    lines = [ln for ln in traceback_text.splitlines() if ln.strip()]
    exception_line = lines[-1].strip() if lines else "an exception"
    frames = re.findall(r'File "[^"]*", line \d+, in (\S+)', traceback_text)
    where = "init()" if "init" in frames else "the scoring server"
    return f"{where} raised {exception_line}"


def describe_exit_code(code: int) -> str:
    """`exited with code 1`, or the signal behind it (`killed by SIGKILL`) for a negative code or 128+N."""
    signum = -code if code < 0 else (code - 128 if 128 < code < 160 else None)
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"was killed by {name} (exit code {code})"
    return f"exited with code {code}"


def format_bytes(n: int) -> str:
    """`128 MiB`, `1.5 GiB`: memory limits as a person reads them."""
    if n >= 1024**3:
        return f"{n / 1024**3:g} GiB"
    return f"{n / 1024**2:g} MiB"


def oom_reason(memory_limit_bytes: Optional[int]) -> str:
    """Why the service died when the kernel's OOM killer ended it, with the limit and the fix."""
    limit = f"its memory limit of {format_bytes(memory_limit_bytes)}" if memory_limit_bytes else "its memory limit"
    return (
        f"OOM-killed: the service used more than {limit} and the kernel killed it; "
        "raise resources.memory_gb in mldeploy.yaml or make init()/run() hold less in memory"
    )


_WORKER_DIED = re.compile(r"worker (\d+) exited with code (-?\d+)")


def worker_death(log_text: str) -> Optional[str]:
    """`a worker (pid 12) was killed by SIGKILL (exit code -9)` from the supervisor's log, or None."""
    found = _WORKER_DIED.findall(log_text)
    if not found:
        return None
    pid, code = found[-1]
    return f"a worker (pid {pid}) {describe_exit_code(int(code))}"


def reading_from_exit(code: int, log_text: str = "", after_start: bool = False) -> StateReading:
    """The state of a service whose process ended with `code` (as `Popen.returncode` gives it).

    Before the service was Healthy, a traceback in the log is the cause (`init()` raised). Once it
    served requests, the log holds tracebacks of run() errors the server answered with a 500: the
    exit code, signal or dead worker is then the cause, and the log tail shows the rest.
    """
    how = describe_exit_code(code)
    worker = worker_death(log_text)
    if worker:
        how = f"{how} after {worker}"
    if after_start:
        return StateReading(ServiceState.FAILED, f"the server {how} after a healthy start")
    traceback_text = extract_traceback(log_text)
    if traceback_text:
        return StateReading(ServiceState.FAILED, f"{describe_exception(traceback_text)}; the server {how}\n{traceback_text}")
    return StateReading(ServiceState.FAILED, f"the server {how}")


def reading_from_inspect(
    state: Mapping[str, Any], memory_limit_bytes: Optional[int] = None, log_text: str = "", after_start: bool = False
) -> Optional[StateReading]:
    """The state Docker's `inspect` (`State`) alone decides, or None when only an HTTP probe can tell.

    Ended containers are Failed (OOM-killed, or exited with a code, with the traceback from the
    log); a running container Docker's own HEALTHCHECK calls unhealthy is Unhealthy.
    """
    status = str(state.get("Status", "")).lower()
    if state.get("OOMKilled"):
        return StateReading(ServiceState.FAILED, oom_reason(memory_limit_bytes))
    if status in ("exited", "dead"):
        code = int(state.get("ExitCode") or 0)
        if state.get("Error"):
            return StateReading(ServiceState.FAILED, f"the container could not run: {state['Error']}")
        if code == 137 and (after_start or not extract_traceback(log_text)):
            return StateReading(
                ServiceState.FAILED,
                "the container was killed by SIGKILL (exit code 137) without an OOM record: "
                "stopped from outside, or a worker hit the memory limit"
                + (f" of {format_bytes(memory_limit_bytes)}" if memory_limit_bytes else ""),
            )
        return reading_from_exit(code, log_text, after_start)
    if status == "removing":
        return StateReading(ServiceState.FAILED, "the container is being removed")
    if status == "paused":
        return StateReading(ServiceState.UNHEALTHY, "the container is paused")
    if status in ("created", "restarting"):
        return StateReading(ServiceState.TRANSITIONING, f"the container is {status}")
    health = state.get("Health") or {}
    if str(health.get("Status", "")).lower() == "unhealthy":
        probes = health.get("Log") or []
        last = str(probes[-1].get("Output", "")).strip() if probes else ""
        detail = f": {last}" if last else ""
        return StateReading(ServiceState.UNHEALTHY, f"Docker's HEALTHCHECK reports unhealthy{detail}")
    return None


def reading_from_probe(status_code: Optional[int], error: Optional[str], was_healthy: bool) -> StateReading:
    """The state a GET / answer gives for a live server: 200 Healthy, 503 still in init().

    `error` is why there was no answer, or the body of a non-200 answer. A 503 after the service
    was healthy, or one that says `Unhealthy` (a stuck run() thread), is Unhealthy: the server is
    replacing a worker, not starting.
    """
    if status_code == 200:
        return StateReading(ServiceState.HEALTHY)
    if status_code == 503:
        if was_healthy or (error or "").startswith("Unhealthy"):
            return StateReading(ServiceState.UNHEALTHY, f"GET / answers 503: {error}" if error else "GET / answers 503")
        return StateReading(ServiceState.TRANSITIONING, "init() has not finished (GET / answers 503)")
    if status_code is not None:
        return StateReading(ServiceState.UNHEALTHY, f"GET / answered {status_code}")
    if was_healthy:
        return StateReading(ServiceState.UNHEALTHY, f"GET / got no answer: {error}")
    return StateReading(ServiceState.TRANSITIONING, f"the server is not listening yet ({error})")
