"""Services started by `mldeploy deploy` and `mldeploy serve`, so later `logs`/`delete` calls find them.

One JSON record per deployment under the project's `.mldeploy/services/` (`NAME.json`, written
atomically) and the service's log at `.mldeploy/services/NAME/service.log`. A `deploy` record
lives until `mldeploy delete`; a `serve` record names the `mldeploy serve` process that owns the
service and stays after it stops, so `mldeploy logs` still prints the last log. Docker services
are re-attached by container id; processes are recognised by pid AND start time, so a reused pid
is never taken for the service (nor signalled).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from pytest_mldeploy.errors import ServiceError

#: `record["started_by"]` values.
DEPLOY = "deploy"
SERVE = "serve"


def _records_dir(project: Any) -> Path:
    return Path(project.registry_dir) / "services"


def _record_path(project: Any, deployment_name: str) -> Path:
    return _records_dir(project) / f"{deployment_name}.json"


def service_dir(project: Any, deployment_name: str) -> Path:
    """`.mldeploy/services/NAME/`: what a started service leaves behind (its log)."""
    return _records_dir(project) / deployment_name


def log_path(project: Any, deployment_name: str) -> Path:
    """`.mldeploy/services/NAME/service.log`: the known place of the log of a served or deployed service."""
    return service_dir(project, deployment_name) / "service.log"


def fresh_log(project: Any, deployment_name: str) -> Path:
    """An empty `log_path` for a service about to start (the previous run's log is replaced)."""
    path = log_path(project, deployment_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _write(project: Any, deployment_name: str, record: dict) -> Path:
    folder = _records_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=2)
    path = _record_path(project, deployment_name)
    os.replace(tmp, path)
    return path


def save(project: Any, deployment_name: str, service: Any, *, started_by: str = DEPLOY,
         log: Optional[Path] = None) -> Path:
    """Remember `service` of `deployment_name`, started by `mldeploy deploy` or (this process) `mldeploy serve`."""
    from pytest_mldeploy.core.targets.cleanup import process_start_time

    owner = os.getpid() if started_by == SERVE else None
    record = {
        "deployment": deployment_name,
        "started_by": started_by,
        "target": service.target,
        "scoring_uri": service.scoring_uri,
        "swagger_uri": service.swagger_uri,
        "keys": list(service.keys),
        "container_id": service.container_id,
        "pid": service.pid,
        "pid_start": process_start_time(service.pid) if service.pid else None,
        "owner_pid": owner,
        "owner_start": process_start_time(owner) if owner else None,
        "log_path": str(log or getattr(service, "log_path", "") or ""),
        "workdir": str(getattr(service, "workdir", "") or ""),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stopped_at": None,
    }
    return _write(project, deployment_name, record)


def mark_stopped(project: Any, deployment_name: str) -> None:
    """Note that the served service stopped; its record and log stay for `mldeploy logs`."""
    try:
        record = load(project, deployment_name)
    except ServiceError:
        return
    if record.get("owner_pid") != os.getpid():  # replaced meanwhile by another command's record
        return
    record["stopped_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write(project, deployment_name, record)


def find(project: Any, deployment_name: str) -> Optional[dict]:
    """The record of `deployment_name`, or None."""
    try:
        return json.loads(_record_path(project, deployment_name).read_text())
    except FileNotFoundError:
        return None


def load(project: Any, deployment_name: str) -> dict:
    record = find(project, deployment_name)
    if record is None:
        path = _record_path(project, deployment_name)
        raise ServiceError(
            f"deployment '{deployment_name}': no service is running from `mldeploy deploy` or `mldeploy serve` "
            f"(no record in {path.parent}); start one with `mldeploy deploy {deployment_name}`"
        )
    return record


def _alive(pid: Optional[int], started: Optional[float]) -> bool:
    from pytest_mldeploy.core.targets.cleanup import process_start_time

    now = process_start_time(pid) if pid else None
    return now is not None and started is not None and abs(now - started) < 1.0


def _process_alive(record: dict) -> bool:
    return _alive(record.get("pid"), record.get("pid_start"))


def is_running(record: dict) -> bool:
    """Whether the service of `record` still runs: a serve's owner is alive, a deployed process is alive.

    A deployed container counts as running until `mldeploy delete` (asking Docker is left to `logs`).
    """
    if record.get("started_by") == SERVE:
        return not record.get("stopped_at") and _alive(record.get("owner_pid"), record.get("owner_start"))
    if record["target"] == "docker":
        return True
    return _process_alive(record)


def describe(record: dict) -> str:
    """`'diabetes' (process, from mldeploy serve, pid 123) at http://...`, for messages."""
    how = f"{record['target']}, from `mldeploy {record.get('started_by', DEPLOY)}`"
    if record.get("started_by") == SERVE and record.get("owner_pid"):
        how += f" pid {record['owner_pid']}"
    return f"'{record['deployment']}' ({how}) at {record['scoring_uri'].rsplit('/', 1)[0]}"


def logs(project: Any, deployment_name: str, tail: Optional[int] = None) -> str:
    """The service's log (its last `tail` lines when given): the running one's, or the last served one's."""
    from pytest_mldeploy.core.service import tail_lines

    record = load(project, deployment_name)
    if record["target"] == "docker" and record.get("started_by", DEPLOY) == DEPLOY:
        from pytest_mldeploy.core.targets.docker import docker_service_from_container

        return docker_service_from_container(record["container_id"]).logs(tail)
    try:
        return tail_lines(Path(record["log_path"]).read_text(errors="replace"), tail)
    except FileNotFoundError:
        raise ServiceError(f"deployment '{deployment_name}': its log {record['log_path']} is gone") from None


def _forget(project: Any, deployment_name: str, record: dict) -> None:
    if record.get("workdir"):
        shutil.rmtree(record["workdir"], ignore_errors=True)
    shutil.rmtree(service_dir(project, deployment_name), ignore_errors=True)
    _record_path(project, deployment_name).unlink(missing_ok=True)


def delete(project: Any, deployment_name: str, grace_s: float = 10.0) -> dict:
    """Stop and remove the service `mldeploy deploy` left running, or forget a stopped served one; returns its record.

    A service `mldeploy serve` is still serving belongs to that command: `ServiceError` says to stop it there.
    """
    record = load(project, deployment_name)
    if record.get("started_by") == SERVE:
        if is_running(record):
            raise ServiceError(
                f"deployment {describe(record)} is being served; stop it with Ctrl-C where `mldeploy serve` "
                f"runs (or `kill {record['owner_pid']}`)"
            )
    elif record["target"] == "docker":
        import docker.errors

        from pytest_mldeploy.core.targets.docker import docker_service_from_container

        try:
            docker_service_from_container(record["container_id"]).delete()
        except (docker.errors.NotFound, ServiceError):
            pass
    elif _process_alive(record):
        pgid = record["pid"]
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _process_alive(record) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _process_alive(record):
            os.killpg(pgid, signal.SIGKILL)
    _forget(project, deployment_name, record)
    return record
