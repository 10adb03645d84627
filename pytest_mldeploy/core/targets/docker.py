"""The Docker target: the deployment's real image, started with testcontainers under its limits.

The container publishes the server's port on 127.0.0.1 only (Docker picks the host port), runs
under `resources.cpu` (NanoCpus) and `resources.memory_gb` (with swap equal to memory, so an
over-limit service is really OOM-killed rather than swapping), and carries the owner labels that
`cleanup` reads. Its state comes from `docker inspect` (OOMKilled, ExitCode, Status, Health) and
from GET /.
"""
from __future__ import annotations

import itertools
import re
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from pytest_mldeploy.core.config import Resources
from pytest_mldeploy.core.docker_client import API_TIMEOUT_S, EXIT_TIMEOUT_S, PING_TIMEOUT_S, docker_client
from pytest_mldeploy.core.service import Service
from pytest_mldeploy.core.service_state import ServiceState, StateReading, reading_from_inspect
from pytest_mldeploy.core.targets import Launch, Target, cleanup
from pytest_mldeploy.core.targets.ryuk import configure_ryuk
from pytest_mldeploy.errors import ServiceError
from pytest_mldeploy.server import contract

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container
    from testcontainers.core.container import DockerContainer

_PORT_KEY = f"{contract.DEFAULT_PORT}/tcp"

_counter = itertools.count(1)
_swept = False
_swept_lock = threading.Lock()


class DockerService(Service):
    """A scoring service running in a Docker container."""

    target = "docker"

    def __init__(
        self,
        name: str,
        base_url: str,
        container: "Container",
        *,
        keys: Optional[list[str]] = None,
        resources: Optional[Resources] = None,
        image: Optional[str] = None,
        testcontainer: Optional["DockerContainer"] = None,
    ) -> None:
        super().__init__(name, base_url, keys=keys, resources=resources, image=image)
        self._container = container
        self._testcontainer = testcontainer

    @property
    def memory_limit(self) -> Optional[int]:
        """The container's memory limit in bytes (None without one): what an OOM kill is measured against."""
        return self.resources.memory_bytes if self.resources is not None else None

    @property
    def container_id(self) -> Optional[str]:
        return self._container.id

    @property
    def container_name(self) -> str:
        return self._container.name

    def inspect(self) -> dict[str, Any]:
        """Fresh `docker inspect` data of the container."""
        self._container.reload()
        return self._container.attrs

    def logs(self, tail: Optional[int] = None) -> str:
        raw = self._container.logs(stdout=True, stderr=True, tail="all" if tail is None else max(tail, 0))
        return raw.decode("utf-8", errors="replace")

    def _runtime_reading(self) -> Optional[StateReading]:
        import docker.errors

        try:
            state = self.inspect().get("State", {})
        except docker.errors.NotFound:
            return StateReading(ServiceState.FAILED, f"container {self.container_name} no longer exists (removed from outside)")
        log_text = self.logs() if str(state.get("Status", "")).lower() in ("exited", "dead") else ""
        return reading_from_inspect(state, self.memory_limit, log_text, after_start=self.was_healthy)

    def _remove(self) -> None:
        import docker.errors

        try:
            self._container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        finally:
            if self._testcontainer is not None:
                try:
                    self._testcontainer.get_docker_client().client.close()
                except Exception:
                    pass


def _cleanup_this_run() -> None:
    """At exit: remove this run's containers, then sweep strays of runs whose owner is gone."""
    cleanup.cleanup_run(cleanup.RUN_ID)
    try:
        client = docker_client(EXIT_TIMEOUT_S)
    except Exception:  # no engine at exit: nothing more to sweep
        return
    try:
        cleanup.sweep_stale_containers(client)
    finally:
        client.close()


def container_name_for(service_name: str, run_id: str, n: int) -> str:
    """`mldeploy-<deployment>-<runid>-<n>`, with what Docker refuses in names replaced by '-'."""
    safe = re.sub(r"[^a-zA-Z0-9_.-]+", "-", service_name).strip("-.") or "service"
    return f"mldeploy-{safe}-{run_id}-{n}"


class DockerTarget(Target):
    """Builds the deployment's image and runs it in a container under its limits."""

    name = "docker"

    def __init__(self, notice: Optional[Callable[[str], None]] = print) -> None:
        super().__init__()
        self.notice = notice
        self.engine_description = ""
        self._client: Optional["DockerClient"] = None

    def _within_engine(self, nano: int, service_name: str) -> int:
        """NanoCpus no larger than the engine's CPUs: Docker refuses a limit above them, Azure VM sizes
        (Standard_DS3_v2: 4 vCPUs) often are; the service then gets every CPU there is, with a notice."""
        try:
            engine_cpus = int(self.client.info().get("NCPU") or 0)
        except Exception:  # noqa: BLE001 - an engine that does not say: keep the limit as asked
            return nano
        if engine_cpus and nano > engine_cpus * 10**9:
            if self.notice is not None:
                self.notice(f"mldeploy: {service_name}: resources.cpu {nano / 1e9:g} is more than the {engine_cpus} CPUs "
                            f"Docker has here; the container gets all {engine_cpus}")
            return engine_cpus * 10**9
        return nano

    def available(self) -> bool:
        try:
            import docker  # noqa: F401  (is the package there at all?)
        except ImportError:
            self.unavailable_reason = "the docker package is not installed (pip install docker testcontainers)"
            return False
        try:
            client = docker_client(PING_TIMEOUT_S)
        except Exception as exc:
            self.unavailable_reason = f"no Docker engine is configured ({_first_line(exc)})"
            return False
        try:
            client.ping()
            version = client.version().get("Version", "?")
            self.engine_description = f"Docker engine {version} answers at {client.api.base_url}"
            self.unavailable_reason = None
            return True
        except Exception as exc:
            self.unavailable_reason = f"no Docker engine answers at {client.api.base_url} ({_first_line(exc)})"
            return False
        finally:
            client.close()

    @property
    def client(self) -> "DockerClient":
        """A docker-py client for this target (created on first use)."""
        if self._client is None:
            self._client = docker_client()
        return self._client

    def prepare(self) -> None:
        """Once per process: decide on Ryuk, sweep stale containers, hook this run's cleanup to exit."""
        global _swept
        configure_ryuk(self.client, self.notice)
        with _swept_lock:
            if not _swept:
                _swept = True
                cleanup.sweep_stale_containers(self.client, self.notice)
        cleanup.on_exit(_cleanup_this_run)

    def _build_progress(self, line: str) -> None:
        """Image build news worth a line: the base image chosen, building or reusing; not every step."""
        if self.notice is not None and not line.lstrip().lower().startswith("step"):
            self.notice(f"mldeploy: {line}")

    def _start(self, launch: Launch) -> Service:
        """Start a container of the deployment's image (built, or reused, here; or `launch.image`, built
        earlier) under the launch's limits.

        The image already holds the deployment's environment variables; only the keys are passed at start.
        """
        from pytest_mldeploy.core.image import build_image

        self.prepare()
        tag = launch.image or build_image(launch.deployment, launch.project, launch.registry, progress=self._build_progress).tag
        limits = launch.resources
        options: dict[str, Any] = {
            "labels": cleanup.owner_labels(launch.name, keep=launch.keep),
            "mem_limit": limits.memory_bytes,
            "memswap_limit": limits.memory_bytes,
            "nano_cpus": self._within_engine(limits.nano_cpus, launch.name),
        }
        env = {contract.AUTH_KEYS_VAR: ",".join(launch.keys)} if launch.keys else {}
        container_name = container_name_for(launch.name, cleanup.RUN_ID, next(_counter))
        container, testcontainer = self._run_container(tag, container_name, env, launch.port, options, launch.keep)
        return DockerService(
            launch.name,
            _base_url(container),
            container,
            keys=launch.keys,
            resources=limits,
            image=tag,
            testcontainer=testcontainer,
        )

    def _run_container(
        self, image: str, container_name: str, env: dict[str, str], port: Optional[int], options: dict[str, Any], keep: bool
    ) -> tuple["Container", Optional["DockerContainer"]]:
        """Start the container; testcontainers for run-scoped ones, docker-py for kept ones.

        A kept container must outlive this process, and testcontainers labels every container with
        its session for Ryuk to reap, so kept containers are created without it. `port` None: Docker
        picks a free host port.
        """
        ports = {_PORT_KEY: ("127.0.0.1", port)}
        if keep:
            container = self.client.containers.run(
                image, name=container_name, environment=env, ports=ports, detach=True, **options
            )
            container.reload()
            return container, None
        from testcontainers.core.container import DockerContainer

        testcontainer = DockerContainer(image, env=env, name=container_name, docker_client_kw={"timeout": API_TIMEOUT_S}, **options)
        testcontainer.ports[_PORT_KEY] = ports[_PORT_KEY]  # type: ignore[assignment]  # docker-py takes (ip, port)
        try:
            testcontainer.start()
        except Exception as exc:
            _remove_by_name(self.client, container_name)
            raise ServiceError(
                f"service '{container_name}': Docker could not start image {image}: {_first_line(exc)}; "
                "check `docker info` and that the image exists (`docker image inspect " + image + "`)"
            ) from exc
        container = testcontainer.get_wrapped_container()
        container.reload()
        return container, testcontainer


def _base_url(container: "Container") -> str:
    """`http://127.0.0.1:<host port>` from the container's published port."""
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(_PORT_KEY) or []
    if not bindings:
        # A container that died at once has no published port; the state tells the story.
        return "http://127.0.0.1:0"
    return f"http://127.0.0.1:{bindings[0]['HostPort']}"


def _remove_by_name(client: "DockerClient", container_name: str) -> None:
    try:
        client.containers.get(container_name).remove(force=True, v=True)
    except Exception:
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def docker_service_from_container(container_id: str, client: Optional["DockerClient"] = None) -> DockerService:
    """Re-attach to a container started earlier (by another `mldeploy` invocation) by id or name."""
    import docker.errors

    client = client or docker_client()
    try:
        container = client.containers.get(container_id)
    except docker.errors.NotFound:
        raise ServiceError(
            f"container '{container_id}' does not exist on this Docker engine; list services with "
            "`docker ps --filter label=mldeploy.managed=true`"
        ) from None
    labels = container.labels or {}
    if labels.get(cleanup.LABEL_MANAGED) != "true":
        raise ServiceError(f"container '{container.name}' was not started by pytest-mldeploy (no mldeploy.managed label)")
    attrs = container.attrs
    env = dict(item.split("=", 1) for item in (attrs.get("Config", {}).get("Env") or []) if "=" in item)
    keys = [k for k in env.get(contract.AUTH_KEYS_VAR, "").split(",") if k]
    service = DockerService(
        labels.get(cleanup.LABEL_DEPLOYMENT) or container.name,
        _base_url(container),
        container,
        keys=keys,
        resources=Resources.from_docker(attrs.get("HostConfig", {})),
        image=attrs.get("Config", {}).get("Image"),
    )
    service.refresh_state()
    return service


__all__ = ["DockerService", "DockerTarget", "container_name_for", "docker_service_from_container"]
