"""Use testcontainers' reaper (Ryuk) where its image can be had; turn it off cleanly otherwise.

Ryuk removes a test session's containers when the session's process dies without cleaning up.
testcontainers starts it before the first container and fails that start when its image can be
neither found nor pulled (an offline CI runner). So before any container starts we check for the
image (locally, then one pull with a short timeout) and, when it cannot be had, set
`testcontainers_config.ryuk_disabled` ourselves (what `TESTCONTAINERS_RYUK_DISABLED=true` does),
with a one-line notice: our own labels, sweep and exit hooks then do the cleanup alone.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, Optional

from pytest_mldeploy.core.docker_client import docker_client

if TYPE_CHECKING:
    from docker import DockerClient

_PULL_TIMEOUT_S = 10.0

_decided: Optional[bool] = None
_lock = threading.Lock()


def ryuk_image() -> str:
    """The reaper image (and tag) the installed testcontainers starts."""
    from testcontainers.core.config import testcontainers_config

    return testcontainers_config.ryuk_image


def _image_present(client: "DockerClient", image: str) -> bool:
    import docker.errors

    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


def _pull_within(image: str, timeout: float) -> Optional[str]:
    """Pull `image` with a time limit; None when it worked, else why not."""
    outcome: dict[str, Optional[str]] = {"error": "the pull did not finish within the timeout"}

    def pull() -> None:
        try:
            client = docker_client(timeout)
            try:
                repository, _, tag = image.rpartition(":")
                client.images.pull(repository, tag=tag or "latest")
                outcome["error"] = None
            finally:
                client.close()
        except Exception as exc:
            detail = getattr(exc, "explanation", None) or str(exc)
            outcome["error"] = "pull failed: " + str(detail).strip().splitlines()[0][:160]

    worker = threading.Thread(target=pull, name="mldeploy-ryuk-pull", daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome["error"]


def configure_ryuk(client: "DockerClient", notice: Optional[Callable[[str], None]] = None) -> bool:
    """Decide once per process whether Ryuk runs; return True when it does.

    Respects a user's explicit `TESTCONTAINERS_RYUK_DISABLED` (or `ryuk.disabled` property).
    """
    global _decided
    with _lock:
        if _decided is not None:
            return _decided
        from testcontainers.core.config import testcontainers_config

        if testcontainers_config.ryuk_disabled:
            _decided = False
            return _decided
        image = ryuk_image()
        if _image_present(client, image):
            _decided = True
            return _decided
        error = _pull_within(image, _PULL_TIMEOUT_S)
        if error is None and _image_present(client, image):
            _decided = True
            return _decided
        testcontainers_config.ryuk_disabled = True
        _decided = False
        if notice is not None:
            notice(
                f"mldeploy: Ryuk ({image}) is not available locally ({error}); testcontainers' reaper is off, "
                "containers are removed by pytest-mldeploy's run cleanup and stale-owner sweep instead"
            )
        return _decided
