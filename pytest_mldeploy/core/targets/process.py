"""The process target: the scoring server as a local process, for machines without Docker.

The app is laid out in a temporary directory exactly as in an image (removed when the service
stops, with the server's log unless the caller gave the log a place of its own), and
`python -m pytest_mldeploy.server` serves it on a free 127.0.0.1 port, from the current
interpreter when it already satisfies the deployment's requirements, else from a cached virtual
environment. CPU and memory limits are NOT enforced here (a plain process has none); `pid` lets
the profiler measure what the server uses.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Callable, Optional

from pytest_mldeploy.core import servers
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.core.service import Service, StateReading, reading_from_exit, tail_lines
from pytest_mldeploy.core.targets import Target
from pytest_mldeploy.core.targets import cleanup
from pytest_mldeploy.core.targets.common import (
    effective_resources,
    free_port,
    health_timeout,
    register_models,
)
from pytest_mldeploy.errors import ServiceError
from pytest_mldeploy.server import contract

#: Seconds between SIGTERM and SIGKILL when a server is stopped.
STOP_GRACE_S = 10.0

_live: set["ProcessService"] = set()
_live_lock = threading.Lock()


def _stop_live_services() -> None:
    """At exit: stop every server this process started, but those kept on purpose."""
    with _live_lock:
        services = [s for s in _live if not s.keep]
    for service in services:
        service.delete()


class ProcessService(Service):
    """A scoring server running as a process group on this machine."""

    target = "process"

    def __init__(
        self,
        name: str,
        base_url: str,
        process: subprocess.Popen,
        log_path: Path,
        log_file: IO[bytes],
        workdir: Path,
        *,
        keys: Optional[list[str]] = None,
        resources: Any = None,
        keep: bool = False,
    ) -> None:
        super().__init__(name, base_url, keys=keys, resources=resources, image=None)
        self.process = process
        self.log_path = log_path
        self.workdir = workdir
        self.keep = keep
        self._log_file = log_file

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid

    def logs(self, tail: Optional[int] = None) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return tail_lines(text, tail)

    def _runtime_reading(self) -> Optional[StateReading]:
        code = self.process.poll()
        if code is None:
            return None
        return reading_from_exit(code, self.logs(), after_start=self.was_healthy)

    def _remove(self) -> None:
        try:
            _stop_group(self.process, STOP_GRACE_S)
        finally:
            self._log_file.close()
            with _live_lock:
                _live.discard(self)
            shutil.rmtree(self.workdir, ignore_errors=True)


def _stop_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM the server's process group, SIGKILL what is left of it after `grace` s, reap the leader.

    The server is started with `start_new_session`, so its pid is its process group id and the
    group holds it and any worker it forked.
    """
    pgid = process.pid
    if process.poll() is None:
        _signal_group(pgid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(pgid, signal.SIGKILL)  # workers that outlived the leader, or a leader that ignored SIGTERM
    process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


class ProcessTarget(Target):
    """Runs the scoring server as a local process (no limits enforced)."""

    name = "process"

    def __init__(self, notice: Optional[Callable[[str], None]] = print) -> None:
        super().__init__()
        self.notice = notice

    def _say(self, deployment: Any) -> None:
        """What the user should know before this deployment runs here: conda packages left out, another Python."""
        if self.notice is None:
            return
        environment = getattr(deployment, "environment", None)
        lines = list(getattr(environment, "notices", lambda: [])())
        pin = getattr(environment, "python_pin", lambda: None)()
        here = "%d.%d" % sys.version_info[:2]
        if pin is not None and pin.version != here:
            lines.append(f"deployment {deployment.name}: {pin.source} asks for Python {pin.version}; the process target "
                         f"runs Python {here} ({sys.executable})")
        for line in lines:
            self.notice(f"mldeploy: {line}")

    def available(self) -> bool:
        self.unavailable_reason = None
        return True

    def deploy(
        self,
        deployment: Any,
        project: Any,
        *,
        registry: Any = None,
        resources: Any = None,
        port: Optional[int] = None,
        name: Optional[str] = None,
        wait: bool = True,
        keep: bool = False,
        log_path: Optional[Path] = None,
    ) -> Service:
        """See `Target.deploy`; `log_path` is where the server's output goes (appended), kept after
        the service stops; by default a file in the service's temporary directory, removed with it."""
        from pytest_mldeploy.core.layout import lay_out_app

        service_name = name or deployment.name
        self._say(deployment)
        registry = registry or Registry.for_project(project)
        models = register_models(deployment, registry)
        workdir = Path(tempfile.mkdtemp(prefix=f"mldeploy-{service_name}-"))
        try:
            layout = lay_out_app(deployment, models, registry, workdir / "app")
            python = _interpreter_for(deployment)
            keys = list(deployment.auth.keys) if deployment.auth.enabled else []
            env = _server_env(layout.server_env(), keys)
            host_port = port or free_port()  # the deployment's own `port` is for serve/deploy only
            log_path = Path(log_path) if log_path else workdir / "server.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = open(log_path, "ab")
            process = subprocess.Popen(
                servers.command(servers.server_of(deployment), python, env, host_port),
                env=env,
                cwd=_working_directory(env, workdir),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        service = ProcessService(
            service_name,
            f"http://127.0.0.1:{host_port}",
            process,
            log_path,
            log_file,
            workdir,
            keys=keys,
            resources=effective_resources(deployment, resources),
            keep=keep,
        )
        with _live_lock:
            _live.add(service)
        cleanup.on_exit(_stop_live_services)
        if wait:
            try:
                service.wait_until_healthy(health_timeout(deployment))
            except ServiceError:
                service.delete()
                raise
        return service


def _server_env(layout_env: dict[str, str], keys: list[str]) -> dict[str, str]:
    """This process's environment plus the app's and the keys."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in layout_env.items()})
    env["PYTHONUNBUFFERED"] = "1"
    if keys:
        env[contract.AUTH_KEYS_VAR] = ",".join(keys)
    else:
        env.pop(contract.AUTH_KEYS_VAR, None)
    return env


def _working_directory(env: dict[str, str], workdir: Path) -> str:
    """Azure ML runs the entry script from the app root, the parent of the source directory; so do we."""
    return env.get(contract.APP_ROOT_VAR) or str(workdir)


def _interpreter_for(deployment: Any) -> str:
    """This interpreter when it satisfies the requirements (with `server: azureml`, Azure's server
    too), else a cached venv's (which holds a copy of our server, see `environment.ensure_venv`)."""
    from pytest_mldeploy.core.environment import ensure_venv, requirements_satisfied

    requirements = servers.requirements_for(deployment)
    if requirements_satisfied(requirements):
        return sys.executable
    return str(ensure_venv(requirements))
