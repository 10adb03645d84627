"""Stream a running service's log to the terminal as it grows, and keep it in a file.

`mldeploy serve` shows what the scoring script prints and every traceback behind a 500 as it
happens. A process service writes its log file itself, so the file is followed; a container's
log is read from Docker's stream and written both to the file (so `mldeploy logs` finds it
after the container is gone) and to the terminal.
"""
from __future__ import annotations

import codecs
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Iterable, Optional

from pytest_mldeploy.core.docker_client import docker_client

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

_POLL_S = 0.2
_CHUNK = 64 * 1024


class LogStream:
    """A background thread copying a service's log to `out` from its start; `stop()` flushes the rest."""

    def __init__(self, copy: Callable[[threading.Event], None]) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=copy, args=(self._stopping,), name="mldeploy-log", daemon=True)

    def start(self) -> "LogStream":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Copy what is left (the service has stopped by now) and end the thread."""
        self._stopping.set()
        self._thread.join(timeout)


def _writer(out: IO[str]) -> Callable[[bytes], None]:
    """Writes bytes to the text stream `out`, never splitting a UTF-8 character across chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(data: bytes) -> None:
        out.write(decoder.decode(data))
        out.flush()

    return write


def follow_file(path: Path, out: IO[str]) -> LogStream:
    """Copy `path` to `out` from its first byte, then what is appended, until stopped."""

    def copy(stopping: threading.Event) -> None:
        write = _writer(out)
        with open(path, "rb") as f:
            while True:
                data = f.read(_CHUNK)
                if data:
                    write(data)
                    continue
                if stopping.is_set():
                    return
                stopping.wait(_POLL_S)

    return LogStream(copy).start()


def tee_chunks(chunks: Iterable[bytes], path: Path, out: IO[str]) -> LogStream:
    """Write each chunk of `chunks` (a container's followed log) to `path` and to `out` until it ends."""

    def copy(_stopping: threading.Event) -> None:
        write = _writer(out)
        with open(path, "ab") as f:
            try:
                for chunk in chunks:
                    f.write(chunk)
                    f.flush()
                    write(chunk)
            except Exception:  # the container was removed under the stream: the log ends here
                return

    return LogStream(copy).start()


def follow_container(container_id: str, path: Path, out: IO[str], client: Optional["DockerClient"] = None) -> LogStream:
    """Stream container `container_id`'s log (from its start) into `path` and `out` until the container stops."""
    client = client or docker_client()
    container = client.containers.get(container_id)
    return tee_chunks(container.logs(stdout=True, stderr=True, stream=True, follow=True), path, out)



def _container(container_id: str, client: Optional["DockerClient"]) -> "Container":
    return (client or docker_client()).containers.get(container_id)


def stop_container(container_id: str, grace_s: float = 10.0, client: Optional["DockerClient"] = None) -> None:
    """Stop the container (SIGTERM, SIGKILL after `grace_s`): its followed log stream ends with its last line."""
    import docker.errors

    try:
        _container(container_id, client).stop(timeout=int(grace_s))
    except docker.errors.NotFound:
        pass


def save_container_log(container_id: str, path: Path, client: Optional["DockerClient"] = None) -> None:
    """Write the (stopped) container's whole log to `path`: complete even when the stream saw none of it."""
    import docker.errors

    try:
        path.write_bytes(_container(container_id, client).logs(stdout=True, stderr=True))
    except docker.errors.NotFound:
        pass
