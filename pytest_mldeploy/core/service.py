"""A running scoring service, whatever started it, and how its state is told.

`Service` is what every target hands back: where to send requests (`base_url`, `scoring_uri`,
`swagger_uri`, `keys`), what it runs on (`pid` or `container_id`, for resource sampling), its
`state`/`reason` in Azure ML's vocabulary, its `logs()`, and `delete()`. The state rules live
here as pure functions over exit codes, Docker `inspect` data and the log text, so they can be
tested without starting anything and read the same on both targets.
"""
from __future__ import annotations

import re
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, Mapping, Optional

import requests

from pytest_mldeploy.errors import ServiceError
from pytest_mldeploy.server.contract import HEALTH_ROUTE, SCORE_ROUTE, SWAGGER_ROUTE

#: How many log lines a failure message carries.
LOG_TAIL_LINES = 40
_POLL_INTERVAL_S = 0.25
_PROBE_TIMEOUT_S = 3.0
#: How long `Service.death()` waits for the runtime to report the end of a server that stopped answering.
DEATH_WAIT_S = 5.0


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


class ServiceFailed(ServiceError):
    """A service did not reach Healthy; carries the state, the reason and the log tail apart."""

    def __init__(self, message: str, *, service_name: str, state: ServiceState, reason: Optional[str], log_tail: str):
        super().__init__(message)
        self.service_name = service_name
        self.state = state
        self.reason = reason
        self.log_tail = log_tail


# --------------------------------------------------------------------------------------------
# Pure state rules
# --------------------------------------------------------------------------------------------

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


def _worker_death(log_text: str) -> Optional[str]:
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
    worker = _worker_death(log_text)
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


def tail_lines(text: str, tail: Optional[int]) -> str:
    """The last `tail` lines of `text` (all of it for None)."""
    if tail is None:
        return text
    if tail <= 0:
        return ""
    lines = text.splitlines(keepends=True)
    return "".join(lines[-tail:])


# --------------------------------------------------------------------------------------------
# Service
# --------------------------------------------------------------------------------------------


class Service(ABC):
    """A deployed scoring service. Subclasses say how it runs; the state rules are shared."""

    #: "docker" or "process".
    target: str = ""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        keys: Optional[list[str]] = None,
        resources: Any = None,
        image: Optional[str] = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.keys: list[str] = list(keys or [])
        self.resources = resources
        self.image = image
        self._state = ServiceState.TRANSITIONING
        self._reason: Optional[str] = "starting"
        self._was_healthy = False
        self._deleted = False

    # -- where to reach it ----------------------------------------------------------------
    @property
    def scoring_uri(self) -> str:
        return self.base_url + SCORE_ROUTE

    @property
    def swagger_uri(self) -> str:
        return self.base_url + SWAGGER_ROUTE

    @property
    def pid(self) -> Optional[int]:
        """The server's process id on this host (process target); None otherwise."""
        return None

    @property
    def container_id(self) -> Optional[str]:
        """The container's id (Docker target); None otherwise."""
        return None

    @property
    def state(self) -> ServiceState:
        return self._state

    @property
    def reason(self) -> Optional[str]:
        return self._reason

    @property
    def deleted(self) -> bool:
        return self._deleted

    def describe(self) -> str:
        """`'diabetes' (docker, container 1a2b3c4d5e6f, image mldeploy/diabetes:abc)`: names the thing."""
        where = [self.target]
        if self.container_id:
            where.append(f"container {self.container_id[:12]}")
        if self.pid:
            where.append(f"pid {self.pid}")
        if self.image:
            where.append(f"image {self.image}")
        return f"service '{self.name}' ({', '.join(where)}) at {self.base_url}"

    # -- what subclasses provide ----------------------------------------------------------
    @abstractmethod
    def logs(self, tail: Optional[int] = None) -> str:
        """The server's stdout and stderr, the last `tail` lines of them when given."""

    @abstractmethod
    def _runtime_reading(self) -> Optional[StateReading]:
        """What the runtime (process table, Docker) alone says, or None when the server runs."""

    @abstractmethod
    def _remove(self) -> None:
        """Stop the server and free what it holds; called once by `delete()`."""

    # -- state ------------------------------------------------------------------------------
    def _set(self, reading: StateReading) -> ServiceState:
        self._state, self._reason = reading.state, reading.reason
        if reading.state is ServiceState.HEALTHY:
            self._was_healthy = True
        return self._state

    def refresh_state(self) -> ServiceState:
        """Ask the runtime, then GET /, and update `state`/`reason`."""
        if self._deleted:
            return self._set(StateReading(ServiceState.FAILED, "the service was deleted"))
        reading = self._runtime_reading()
        if reading is not None and reading.state is not ServiceState.TRANSITIONING:
            return self._set(reading)
        status_code, error = self._probe()
        probed = reading_from_probe(status_code, error, self._was_healthy)
        if probed.state is not ServiceState.HEALTHY and reading is not None:
            return self._set(reading)
        # The runtime may have ended between the two looks: trust a Failed over a refused connection.
        if status_code is None:
            late = self._runtime_reading()
            if late is not None and late.state is ServiceState.FAILED:
                return self._set(late)
        return self._set(probed)

    @property
    def was_healthy(self) -> bool:
        """True once the service has answered GET / with 200: a later end is a death after start."""
        return self._was_healthy

    def death(self, timeout: float = DEATH_WAIT_S) -> Optional[str]:
        """Why the service is dead (exit code, signal, OOM kill, with the limit), or None while it lives.

        Called when a request got no answer: a server that has just dropped its connections may
        not be reaped yet (or Docker not yet told), so the runtime is asked again for up to
        `timeout` s, stopping as soon as GET / answers 200 or the runtime reports the end. A
        worker that died takes the whole server down: another worker answering meanwhile does
        not make it alive.
        """
        deadline = time.monotonic() + timeout
        while True:
            state = self.refresh_state()
            if state is ServiceState.FAILED:
                return self._reason or "the service ended"
            if time.monotonic() >= deadline:
                return None
            if state is ServiceState.HEALTHY and not _worker_death(self._safe_logs(LOG_TAIL_LINES)):
                return None
            time.sleep(_POLL_INTERVAL_S / 2)

    def _probe(self) -> tuple[Optional[int], Optional[str]]:
        try:
            response = requests.get(self.base_url + HEALTH_ROUTE, timeout=_PROBE_TIMEOUT_S)
        except requests.RequestException as exc:
            return None, _short_error(exc)
        return response.status_code, (response.text.strip()[:300] or None) if response.status_code != 200 else None

    def wait_until_healthy(self, timeout: float) -> "Service":
        """Poll until Healthy; raise `ServiceFailed` (a `ServiceError`) when it fails or `timeout` s pass."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.refresh_state()
            if state is ServiceState.HEALTHY:
                return self
            if state is ServiceState.FAILED:
                raise self.failure()
            if time.monotonic() >= deadline:
                last = f" (last seen {state.value}: {self._reason})" if self._reason else f" (last seen {state.value})"
                self._set(
                    StateReading(
                        ServiceState.FAILED,
                        f"timed out after {timeout:g} s waiting for GET / to answer 200{last}; "
                        "raise health_timeout_s in mldeploy.yaml if init() needs longer",
                    )
                )
                raise self.failure()
            time.sleep(_POLL_INTERVAL_S)

    def failure(self) -> ServiceFailed:
        """The error that explains the current state to a person reading a CI log."""
        log_tail = self._safe_logs(LOG_TAIL_LINES)
        reason = self._reason or "no reason recorded"
        headline, _, details = reason.partition("\n")
        message = f"{self.describe()} is {self._state.value}: {headline}"
        if details.strip() and details.strip() not in log_tail:
            message += "\n" + details.rstrip()
        if log_tail.strip():
            message += f"\n--- last {LOG_TAIL_LINES} log lines of '{self.name}' ---\n{log_tail.rstrip()}"
        else:
            message += "\n(the service wrote no log)"
        return ServiceFailed(message, service_name=self.name, state=self._state, reason=self._reason, log_tail=log_tail)

    def _safe_logs(self, tail: Optional[int]) -> str:
        try:
            return self.logs(tail=tail)
        except Exception as exc:  # the logs are evidence, never the reason to fail again
            return f"(logs unavailable: {exc})"

    # -- lifetime ---------------------------------------------------------------------------
    def delete(self) -> None:
        """Stop and remove the service; calling it again does nothing."""
        if self._deleted:
            return
        self._remove()
        self._deleted = True
        self._state, self._reason = ServiceState.FAILED, "the service was deleted"

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.delete()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state.value} {self.base_url}>"


def _short_error(exc: Exception) -> str:
    """`connection refused` rather than urllib3's nested repr."""
    text = str(exc)
    for needle, short in (("Connection refused", "connection refused"), ("timed out", "timed out"), ("Connection reset", "connection reset")):
        if needle in text:
            return short
    return type(exc).__name__
