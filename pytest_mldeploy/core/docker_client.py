"""The one place a docker-py client is made, and how long its calls may take.

Everything that talks to the engine (targets, image builds, base images, log streams, resource
sampling, cleanup) gets its client here, so the engine is found the same way (`DOCKER_HOST` and
the other `DOCKER_*` variables, as `docker.from_env` reads them) and the timeouts are named once.
`docker` is imported on first use: a process-target run never loads it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

#: Seconds an API call may take: builds, starts, inspects, removals (docker-py's own default).
API_TIMEOUT_S = 60
#: Seconds to tell whether an engine answers at all (`get_target("auto")` asks before every run).
PING_TIMEOUT_S = 3
#: Seconds a call may take at interpreter exit, where a hung engine must not hold the process.
EXIT_TIMEOUT_S = 10


def docker_client(timeout: float = API_TIMEOUT_S) -> "docker.DockerClient":
    """A client for the engine the environment names; the caller closes it.

    Raises `docker.errors.DockerException` when no engine is configured; callers that must not
    fail (a ping, an exit hook) catch it, the others turn it into an error that names the fix.
    """
    import docker

    return docker.from_env(timeout=int(timeout))
