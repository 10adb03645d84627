"""Who owns a service container, and removing the ones nobody owns any more.

Every container the Docker target starts carries labels naming its owner: the run id, the
host, the owning process id and that process's start time. A container is *stale* when its owner
on this host is gone: the pid no longer exists, or it exists with another start time (the pid
was reused). Containers of other hosts, of live owners (another xdist worker, another repo's test
run) and those marked `mldeploy.keep=true` (left running on purpose by `mldeploy deploy`) are
never touched.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

import psutil

from pytest_mldeploy.core.docker_client import EXIT_TIMEOUT_S, docker_client

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger(__name__)

LABEL_MANAGED = "mldeploy.managed"
LABEL_RUN_ID = "mldeploy.run-id"
LABEL_HOST = "mldeploy.host"
LABEL_PID = "mldeploy.pid"
LABEL_PID_START = "mldeploy.pid-start"
LABEL_DEPLOYMENT = "mldeploy.deployment"
LABEL_KEEP = "mldeploy.keep"

#: Start times are compared with this slack: psutil reads them from /proc with tick precision.
_START_TIME_SLACK_S = 1.0

#: This process's run id: names its containers and lets `cleanup_run` find them.
RUN_ID = uuid.uuid4().hex[:8]


def process_start_time(pid: int) -> Optional[float]:
    """The start time of process `pid` (seconds since the epoch), None when no such process exists."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return None


def owner_labels(deployment: str, *, keep: bool = False, run_id: Optional[str] = None) -> dict[str, str]:
    """The labels that name this process as the owner of a container of `deployment`."""
    pid = os.getpid()
    start = process_start_time(pid)
    return {
        LABEL_MANAGED: "true",
        LABEL_RUN_ID: run_id or RUN_ID,
        LABEL_HOST: socket.gethostname(),
        LABEL_PID: str(pid),
        LABEL_PID_START: f"{start:.3f}" if start is not None else "",
        LABEL_DEPLOYMENT: deployment,
        LABEL_KEEP: "true" if keep else "false",
    }


@dataclass(frozen=True)
class SweepDecision:
    """Whether a container should be removed, and why (for the notice and the tests)."""

    remove: bool
    why: str


def sweep_decision(
    labels: Mapping[str, str],
    *,
    host: str,
    start_time_of: Callable[[int], Optional[float]] = process_start_time,
) -> SweepDecision:
    """The sweep rule for one container's labels, `host` being this machine's name."""
    if labels.get(LABEL_MANAGED) != "true":
        return SweepDecision(False, "not managed by pytest-mldeploy")
    if labels.get(LABEL_KEEP) == "true":
        return SweepDecision(False, "kept on purpose (mldeploy.keep=true)")
    if labels.get(LABEL_HOST) != host:
        return SweepDecision(False, f"owned by another host ({labels.get(LABEL_HOST) or 'unknown'})")
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return SweepDecision(False, "owner pid label missing or unreadable: cannot tell, left alone")
    actual = start_time_of(pid)
    if actual is None:
        return SweepDecision(True, f"owner pid {pid} is gone")
    try:
        recorded = float(labels.get(LABEL_PID_START, ""))
    except ValueError:
        return SweepDecision(False, f"owner pid {pid} is alive (no start time recorded to check)")
    if abs(actual - recorded) > _START_TIME_SLACK_S:
        return SweepDecision(True, f"pid {pid} now belongs to another process (started {actual:.0f}, owner started {recorded:.0f})")
    return SweepDecision(False, f"owner pid {pid} is alive")


def sweep_stale_containers(client: "DockerClient", notice: Optional[Callable[[str], None]] = None) -> list[str]:
    """Remove managed containers whose owner on this host is gone; return their names.

    Only containers labelled `mldeploy.managed=true` are looked at.
    """
    import docker.errors

    host = socket.gethostname()
    removed: list[str] = []
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_MANAGED}=true"}):
        decision = sweep_decision(container.labels or {}, host=host)
        if not decision.remove:
            continue
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            log.warning("could not remove stale container %s: %s", container.name, exc)
            continue
        removed.append(container.name)
        if notice is not None:
            notice(f"mldeploy: removed stale container {container.name} ({decision.why})")
    return removed


def cleanup_run(run_id: Optional[str] = None, client: Optional["DockerClient"] = None) -> list[str]:
    """Remove this run's containers (all but those kept on purpose); return their names.

    Safe to call at any time and more than once; answers [] when no Docker engine answers.
    """
    run_id = run_id or RUN_ID
    own_client = client is None
    try:
        if client is None:
            client = docker_client(EXIT_TIMEOUT_S)
        removed = []
        for container in client.containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}={run_id}"}):
            if (container.labels or {}).get(LABEL_KEEP) == "true":
                continue
            try:
                container.remove(force=True, v=True)
                removed.append(container.name)
            except Exception as exc:  # one stuck container must not keep the others alive
                log.warning("could not remove container %s: %s", container.name, exc)
        return removed
    except Exception as exc:
        log.debug("cleanup of run %s skipped: %s", run_id, exc)
        return []
    finally:
        if own_client and client is not None:
            client.close()


_exit_callbacks: list[Callable[[], Any]] = []
_hooks_installed = False
_hooks_lock = threading.Lock()


def on_exit(callback: Callable[[], Any]) -> None:
    """Run `callback` at interpreter exit and on SIGTERM (once, whichever comes first).

    Targets register here what must not outlive this process: the Docker target this run's
    containers, the process target its server processes.
    """
    with _hooks_lock:
        if callback not in _exit_callbacks:
            _exit_callbacks.append(callback)
    _install_hooks()


def run_exit_callbacks() -> None:
    """Run (and forget) every registered exit callback; one failing does not stop the others."""
    with _hooks_lock:
        callbacks = list(_exit_callbacks)
        _exit_callbacks.clear()
    for callback in callbacks:
        try:
            callback()
        except Exception as exc:
            log.warning("mldeploy exit cleanup %r failed: %s", callback, exc)


def _install_hooks() -> None:
    """atexit always; the SIGTERM handler only from the main thread, chained to one already there."""
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
    atexit.register(run_exit_callbacks)
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if not (previous in (signal.SIG_DFL, None) or callable(previous)):
        return  # SIGTERM is ignored on purpose (SIG_IGN): leave it so

    def on_sigterm(signum: int, frame: Any) -> None:
        run_exit_callbacks()
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
