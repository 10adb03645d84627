"""Services left running on purpose by `mldeploy deploy`, so later `logs`/`delete` calls find them.

One JSON record per deployment under the project's `.mldeploy/services/`, written atomically.
Docker services are re-attached by container id; process services by pid, checked against the
process start time so a reused pid is never signalled.
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


def _records_dir(project: Any) -> Path:
    return Path(project.registry_dir) / "services"


def save(project: Any, deployment_name: str, service: Any) -> Path:
    """Remember a kept `service` of `deployment_name`."""
    from pytest_mldeploy.core.targets.cleanup import process_start_time

    record = {
        "deployment": deployment_name,
        "target": service.target,
        "scoring_uri": service.scoring_uri,
        "swagger_uri": service.swagger_uri,
        "keys": list(service.keys),
        "container_id": service.container_id,
        "pid": service.pid,
        "pid_start": process_start_time(service.pid) if service.pid else None,
        "log_path": str(getattr(service, "log_path", "") or ""),
        "workdir": str(getattr(service, "workdir", "") or ""),
    }
    folder = _records_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=2)
    path = folder / f"{deployment_name}.json"
    os.replace(tmp, path)
    return path


def load(project: Any, deployment_name: str) -> dict:
    path = _records_dir(project) / f"{deployment_name}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ServiceError(
            f"deployment '{deployment_name}': no service is running from `mldeploy deploy` "
            f"(no record in {path.parent}); start one with `mldeploy deploy {deployment_name}`"
        ) from None


def _process_alive(record: dict) -> bool:
    from pytest_mldeploy.core.targets.cleanup import process_start_time

    started = process_start_time(record["pid"]) if record.get("pid") else None
    return started is not None and record.get("pid_start") is not None and abs(started - record["pid_start"]) < 1.0


def logs(project: Any, deployment_name: str, tail: Optional[int] = None) -> str:
    """The kept service's log (its last `tail` lines when given)."""
    from pytest_mldeploy.core.service import tail_lines

    record = load(project, deployment_name)
    if record["target"] == "docker":
        from pytest_mldeploy.core.targets.docker import docker_service_from_container

        return docker_service_from_container(record["container_id"]).logs(tail)
    try:
        return tail_lines(Path(record["log_path"]).read_text(errors="replace"), tail)
    except FileNotFoundError:
        raise ServiceError(f"deployment '{deployment_name}': its log {record['log_path']} is gone") from None


def delete(project: Any, deployment_name: str, grace_s: float = 10.0) -> dict:
    """Stop and remove the kept service; returns its record."""
    record = load(project, deployment_name)
    if record["target"] == "docker":
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
    if record.get("workdir"):
        shutil.rmtree(record["workdir"], ignore_errors=True)
    (_records_dir(project) / f"{deployment_name}.json").unlink(missing_ok=True)
    return record
