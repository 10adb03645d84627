"""What both targets need the same way around a server: host ports."""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from pytest_mldeploy.core.config import Deployment


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serving_port(deployment: "Deployment", requested: Optional[int] = None) -> Optional[int]:
    """The host port `mldeploy serve`/`deploy` publish on: `--port`, else the deployment's `port`.

    Only those two commands honour a fixed port. Checks, the profile's verification and every
    other caller of `Target.deploy` pass no port and get a free one, so a fixed port that is
    taken (by a kept service, say) never fails a test run.
    """
    return requested or deployment.port
