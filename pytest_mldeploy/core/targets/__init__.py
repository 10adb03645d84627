"""Where a deployment runs: a Docker container (the real image) or a local process (no Docker).

`Target.deploy` is the same on both: it settles what to start (a `Launch`), has the target start
it (`_start`, the one thing a target implements), then waits until the service is Healthy and
deletes it when it is not. `get_target("auto")` picks Docker when an engine answers and the
process target otherwise, and says which in one line.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from pytest_mldeploy.core.service import Service
from pytest_mldeploy.errors import ServiceError

if TYPE_CHECKING:
    from pytest_mldeploy.core.config import Deployment, Project, Resources
    from pytest_mldeploy.core.registry import Registry

TARGET_KINDS = ("auto", "docker", "process")


@dataclass(frozen=True)
class Launch:
    """What `Target.deploy` has settled before a target starts a service."""

    deployment: "Deployment"
    project: "Project"
    registry: "Registry"
    #: The limits to run under: the caller's override, else the deployment's own.
    resources: "Resources"
    #: The service's name (the deployment's, unless the caller chose another).
    name: str
    #: The keys the server accepts ([] without auth); they reach the server at start, never an image.
    keys: list[str]
    #: The host port; None for a free one.
    port: Optional[int]
    #: Leave the service running after this process exits.
    keep: bool
    #: Where the server's output is kept (the process target; a container keeps its own log).
    log_path: Optional[Path]
    #: An image built earlier to run instead of building the deployment's (Docker target only).
    image: Optional[str]


class Target(ABC):
    """Deploys a `Deployment` of a `Project` and hands back a running `Service`."""

    name: str = ""

    def __init__(self) -> None:
        self.unavailable_reason: Optional[str] = None

    @abstractmethod
    def available(self) -> bool:
        """Whether this target can deploy here; when not, `unavailable_reason` says why."""

    @abstractmethod
    def _start(self, launch: Launch) -> Service:
        """Start the service `launch` describes and return it at once, still starting."""

    def deploy(
        self,
        deployment: "Deployment",
        project: "Project",
        *,
        registry: Optional["Registry"] = None,
        resources: Optional["Resources"] = None,
        port: Optional[int] = None,
        name: Optional[str] = None,
        wait: bool = True,
        keep: bool = False,
        log_path: Optional[Path] = None,
        image: Optional[str] = None,
    ) -> Service:
        """Start `deployment` and return its service (Healthy when `wait`, else still starting).

        `resources` overrides `deployment.resources` (profiling's closed loop tries several);
        `port` fixes the host port (a free one otherwise; the deployment's own `port` is NOT
        used here: `mldeploy serve`/`deploy` pass it through `common.serving_port`); `name` overrides the service name;
        `keep` leaves the service running after this process exits (`mldeploy deploy`);
        `log_path` is where the process target appends the server's output, kept after the service
        stops (by default a file removed with the service; Docker keeps a container's log itself);
        `image` runs that image, built earlier (`mldeploy compare image:TAG`), instead of building the
        deployment's (Docker target only).
        With `wait`, a service that does not reach Healthy is deleted and `ServiceError` raised
        with its state, reason and log tail.
        """
        from pytest_mldeploy.core.registry import Registry

        service = self._start(
            Launch(
                deployment=deployment,
                project=project,
                registry=registry or Registry.for_project(project),
                resources=resources if resources is not None else deployment.resources,
                name=name or deployment.name,
                keys=list(deployment.auth.keys) if deployment.auth.enabled else [],
                port=port,
                keep=keep,
                log_path=log_path,
                image=image,
            )
        )
        if wait:
            try:
                service.wait_until_healthy(deployment.health_timeout_s)
            except ServiceError:
                service.delete()
                raise
        return service


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
                "or use the process target (`--target process`; in pytest, `--mldeploy-target process`)"
            )
        return docker_target
    if docker_target.available():
        if notice is not None:
            notice(f"mldeploy: target auto -> docker ({docker_target.engine_description})")
        return docker_target
    if notice is not None:
        notice(f"mldeploy: target auto -> process ({docker_target.unavailable_reason}; resource limits are not enforced)")
    return ProcessTarget(notice=notice)


__all__ = ["TARGET_KINDS", "Launch", "Target", "get_target"]
