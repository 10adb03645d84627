"""A running scoring service, whatever started it.

`Service` is what every target hands back: where to send requests (`base_url`, `scoring_uri`,
`swagger_uri`, `keys`), what it runs on (`pid` or `container_id`, for resource sampling), its
`state`/`reason` in Azure ML's vocabulary, its `logs()`, and `delete()`. How a state is told
from an exit code, Docker's `inspect` data or a GET / answer is `service_state`'s job; a
`Service` asks its runtime and the server, and applies those rules.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import TYPE_CHECKING, Optional

import requests

from pytest_mldeploy.core.service_state import ServiceState, StateReading, reading_from_probe, worker_death
from pytest_mldeploy.errors import ServiceError
from pytest_mldeploy.server.contract import HEALTH_ROUTE, SCORE_ROUTE, SWAGGER_ROUTE

if TYPE_CHECKING:
    from pytest_mldeploy.core.config import Resources

#: How many log lines a failure message carries.
LOG_TAIL_LINES = 40
_POLL_INTERVAL_S = 0.25
_PROBE_TIMEOUT_S = 3.0
#: How long `Service.death()` waits for the runtime to report the end of a server that stopped answering.
DEATH_WAIT_S = 5.0
#: How long a death is awaited once the log shows a dead worker (the supervisor then exits).
SUPERVISOR_EXIT_WAIT_S = 30.0


class ServiceFailed(ServiceError):
    """A service did not reach Healthy; carries the state, the reason and the log tail apart."""

    def __init__(self, message: str, *, service_name: str, state: ServiceState, reason: Optional[str], log_tail: str):
        super().__init__(message)
        self.service_name = service_name
        self.state = state
        self.reason = reason
        self.log_tail = log_tail


def tail_lines(text: str, tail: Optional[int]) -> str:
    """The last `tail` lines of `text` (all of it for None)."""
    if tail is None:
        return text
    if tail <= 0:
        return ""
    lines = text.splitlines(keepends=True)
    return "".join(lines[-tail:])


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
        resources: Optional["Resources"] = None,
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
        waited_for_supervisor = False
        while True:
            state = self.refresh_state()
            if state is ServiceState.FAILED:
                return self._reason or "the service ended"
            dead_worker = worker_death(self._safe_logs(LOG_TAIL_LINES))
            if dead_worker and not waited_for_supervisor:
                # The supervisor is stopping the other workers: on a busy machine that outlasts `timeout`.
                deadline = max(deadline, time.monotonic() + SUPERVISOR_EXIT_WAIT_S)
                waited_for_supervisor = True
            if time.monotonic() >= deadline:
                return f"{dead_worker}; the server had not exited {SUPERVISOR_EXIT_WAIT_S:.0f} s later" if dead_worker else None
            if state is ServiceState.HEALTHY and not dead_worker:
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
