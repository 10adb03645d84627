"""What both targets do the same way before a server starts: the registry, resources, ports."""
from __future__ import annotations

import socket
from typing import Any, Optional

#: How long a deployment waits for GET / to answer 200 when `health_timeout_s` is not set.
DEFAULT_HEALTH_TIMEOUT_S = 120.0


def register_models(deployment: Any, registry: Any) -> list[Any]:
    """Register the deployment's models in `registry` (content-addressed, so repeats reuse versions)."""
    return list(registry.register_deployment_models(deployment))


def health_timeout(deployment: Any) -> float:
    """`health_timeout_s` from mldeploy.yaml, or the default."""
    value = getattr(deployment, "health_timeout_s", None)
    return float(value) if value else DEFAULT_HEALTH_TIMEOUT_S


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serving_port(deployment: Any, requested: Optional[int] = None) -> Optional[int]:
    """The host port `mldeploy serve`/`deploy` publish on: `--port`, else the deployment's `port`.

    Only those two commands honour a fixed port. Checks, the profile's verification and every
    other caller of `Target.deploy` pass no port and get a free one, so a fixed port that is
    taken (by a kept service, say) never fails a test run.
    """
    return requested or getattr(deployment, "port", None) or None


def effective_resources(deployment: Any, override: Any = None) -> Any:
    """The override when given (profiling tries several), else the deployment's own resources."""
    return override if override is not None else getattr(deployment, "resources", None)


def memory_limit_bytes(resources: Any) -> Optional[int]:
    """`resources.memory_gb` in bytes (GiB, as Azure's memory_gb is), None when unset."""
    memory_gb = getattr(resources, "memory_gb", None)
    return int(float(memory_gb) * 1024**3) if memory_gb else None


def nano_cpus(resources: Any) -> Optional[int]:
    """`resources.cpu` as Docker's NanoCpus (1 CPU = 10^9), None when unset."""
    cpu = getattr(resources, "cpu", None)
    return int(float(cpu) * 1e9) if cpu else None
