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
from typing import IO, TYPE_CHECKING, Callable, Optional

from pytest_mldeploy.core import servers
from pytest_mldeploy.core.service import Service, tail_lines
from pytest_mldeploy.core.service_state import StateReading, reading_from_exit
from pytest_mldeploy.core.targets import Launch, Target, cleanup
from pytest_mldeploy.core.targets.common import free_port
from pytest_mldeploy.errors import ServiceError
from pytest_mldeploy.server import contract

if TYPE_CHECKING:
    from pytest_mldeploy.core.config import Deployment, Resources

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
        resources: Optional["Resources"] = None,
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

    def _say(self, deployment: "Deployment") -> None:
        """What the user should know before this deployment runs here: conda packages left out, another Python."""
        if self.notice is None:
            return
        lines = deployment.environment.notices()
        pin = deployment.environment.python_pin()
        here = "%d.%d" % sys.version_info[:2]
        if pin is not None and pin.version != here:
            lines.append(f"deployment {deployment.name}: {pin.source} asks for Python {pin.version}; the process target "
                         f"runs Python {here} ({sys.executable})")
        for line in lines:
            self.notice(f"mldeploy: {line}")

    def available(self) -> bool:
        self.unavailable_reason = None
        return True

    def _start(self, launch: Launch) -> Service:
        """Lay the app out in a temporary directory and start the server on it, from a suitable interpreter."""
        from pytest_mldeploy.core.layout import lay_out_app

        if launch.image is not None:
            raise ServiceError(
                f"service '{launch.name}': the process target cannot run image {launch.image}; "
                "use the Docker target (--target docker)"
            )
        deployment = launch.deployment
        self._say(deployment)
        models = launch.registry.register_deployment_models(deployment)
        workdir = Path(tempfile.mkdtemp(prefix=f"mldeploy-{launch.name}-"))
        try:
            layout = lay_out_app(deployment, models, launch.registry, workdir / "app")
            python = _interpreter_for(deployment)
            env = _server_env(layout.server_env(), launch.keys)
            host_port = launch.port or free_port()  # the deployment's own `port` is for serve/deploy only
            log_path = launch.log_path or workdir / "server.log"
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
            launch.name,
            f"http://127.0.0.1:{host_port}",
            process,
            log_path,
            log_file,
            workdir,
            keys=launch.keys,
            resources=launch.resources,
            keep=launch.keep,
        )
        with _live_lock:
            _live.add(service)
        cleanup.on_exit(_stop_live_services)
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


def _interpreter_for(deployment: "Deployment") -> str:
    """This interpreter when it satisfies the requirements (with `server: azureml`, Azure's server
    too), else a cached venv's (which holds a copy of our server, see `host_venv.ensure_venv`)."""
    from pytest_mldeploy.core.host_venv import ensure_venv, requirements_satisfied

    requirements = servers.requirements_for(deployment)
    if requirements_satisfied(requirements):
        return sys.executable
    return str(ensure_venv(requirements))
