"""Where a deployment runs: a Docker container (the real image) or a local process (no Docker).

`get_target("auto")` picks Docker when an engine answers and the process target otherwise, and
says which in one line.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Optional

from pytest_mldeploy.core.service import Service
from pytest_mldeploy.errors import ServiceError

TARGET_KINDS = ("auto", "docker", "process")


class Target(ABC):
    """Deploys a `Deployment` of a `Project` and hands back a running `Service`."""

    name: str = ""

    def __init__(self) -> None:
        self.unavailable_reason: Optional[str] = None

    @abstractmethod
    def available(self) -> bool:
        """Whether this target can deploy here; when not, `unavailable_reason` says why."""

    @abstractmethod
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
    ) -> Service:
        """Start `deployment` and return its service (Healthy when `wait`, else still starting).

        `resources` overrides `deployment.resources` (profiling's closed loop tries several);
        `port` fixes the host port (a free one otherwise; the deployment's own `port` is NOT
        used here: `mldeploy serve`/`deploy` pass it through `common.serving_port`); `name` overrides the service name;
        `keep` leaves the service running after this process exits (`mldeploy deploy`).
        With `wait`, a service that does not reach Healthy is deleted and `ServiceError` raised
        with its state, reason and log tail.
        """


def get_target(kind: str = "auto", notice: Optional[Callable[[str], None]] = print) -> Target:
    """The target named `kind`; for "auto", Docker when an engine answers, the process target otherwise."""
    from pytest_mldeploy.core.targets.docker import DockerTarget
    from pytest_mldeploy.core.targets.process import ProcessTarget

    if kind not in TARGET_KINDS:
        raise ServiceError(f"target '{kind}' is unknown: use one of {', '.join(TARGET_KINDS)}")
    if kind == "process":
        return ProcessTarget(notice=notice)
    docker_target = DockerTarget(notice=notice)
    if kind == "docker":
        if not docker_target.available():
            raise ServiceError(
                f"target 'docker': {docker_target.unavailable_reason}; start a Docker engine (or set DOCKER_HOST), "
                "or use the process target (--mldeploy-target process)"
            )
        return docker_target
    if docker_target.available():
        if notice is not None:
            notice(f"mldeploy: target auto -> docker ({docker_target.engine_description})")
        return docker_target
    if notice is not None:
        notice(f"mldeploy: target auto -> process ({docker_target.unavailable_reason}; resource limits are not enforced)")
    return ProcessTarget(notice=notice)


__all__ = ["TARGET_KINDS", "Target", "get_target"]
