"""Start the real scoring server as a subprocess over an Azure-style app root in a temp folder."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
MODEL_NAME = "sklearn_regression_model"
MODEL_FILE = f"{MODEL_NAME}.pkl"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AppRoot:
    """A temp `app/` laid out like an Azure ML image: `src/` plus `azureml-models/NAME/VERSION/`."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def src(self) -> Path:
        return self.root / "src"

    def add_model(self, name: str, version: int, source: Path) -> Path:
        """Copy a file or folder into azureml-models/NAME/VERSION/ under its own basename."""
        target_dir = self.root / "azureml-models" / name / str(version)
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / source.name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
        return target_dir


def make_app(tmp_path: Path, script: Path, entry_name: Optional[str] = None) -> AppRoot:
    """An app root serving `script` with the example's model registered as version 1."""
    app = AppRoot(tmp_path / "app")
    app.src.mkdir(parents=True)
    entry = entry_name or script.name
    shutil.copy(script, app.src / entry)
    version_dir = app.add_model(MODEL_NAME, 1, EXAMPLE / "models" / MODEL_FILE)
    app.env = {
        "AML_APP_ROOT": str(app.root),
        "AZUREML_SOURCE_DIRECTORY": "src",
        "AZUREML_ENTRY_SCRIPT": entry,
        "AZUREML_MODEL_DIR": str(version_dir),
    }
    return app


@dataclass
class Server:
    """A running server process and where to reach it."""

    process: subprocess.Popen
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def wait_exit(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def wait_ready(server: Server, timeout: float = 60) -> None:
    """Poll GET / until 200; fail with the server's log if it exits or never gets there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"server exited with code {server.process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.url + "/", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    pytest.fail(f"server not ready within {timeout} s:\n{server.log()}")


def wait_listening(server: Server, timeout: float = 30) -> None:
    """Poll until the port accepts connections (whatever it answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return
        try:
            requests.get(server.url + "/", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    pytest.fail(f"server not listening within {timeout} s:\n{server.log()}")


class ServerFactory:
    """Starts servers whose logs go under `base`; `stop_all()` ends every one of them."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started: list[Server] = []

    def __call__(self, app: AppRoot, env: Optional[dict[str, str]] = None, wait: bool = True,
                 args: Optional[list[str]] = None, python_path: Optional[list[Path]] = None,
                 python_options: tuple[str, ...] = ()) -> Server:
        """Serve `app`; `python_path` replaces this checkout on PYTHONPATH, `python_options` go before `-m`."""
        port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "MLDEPLOY_", "AML_"))}
        full_env.update(app.env)
        full_env.update(env or {})
        full_env["PYTHONPATH"] = (os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
                                  if python_path is None else os.pathsep.join(map(str, python_path)))
        full_env["PYTHONUNBUFFERED"] = "1"
        log_path = self.base / f"server-{port}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, *python_options, "-m", "pytest_mldeploy.server", "--host", "127.0.0.1", "--port", str(port),
                 *(args or [])],
                env=full_env, cwd=str(self.base), stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        server = Server(process, f"http://127.0.0.1:{port}", log_path)
        self.started.append(server)
        if wait:
            wait_ready(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Factory: start_server(app, env={...}, wait=True, args=[...]) -> Server; stopped after the test."""
    factory = ServerFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Like start_server, for servers shared by a module's tests."""
    factory = ServerFactory(tmp_path_factory.mktemp("servers"))
    yield factory
    factory.stop_all()


@pytest.fixture
def example_app(tmp_path: Path) -> AppRoot:
    """The sklearn-diabetes example's unmodified score.py and model."""
    return make_app(tmp_path, EXAMPLE / "score.py")


@pytest.fixture
def script_app(tmp_path: Path) -> Callable[[str], AppRoot]:
    """Factory: an app root serving tests/server/scripts/NAME (as score.py)."""

    def build(name: str) -> AppRoot:
        return make_app(tmp_path, SCRIPTS / name, entry_name="score.py")

    return build


@pytest.fixture(scope="session")
def example_dir() -> Path:
    """The sklearn-diabetes example project."""
    return EXAMPLE


@pytest.fixture(scope="module")
def module_app(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., AppRoot]:
    """Factory for module-scoped app roots: module_app("plain.py") or module_app(path_to_score_py)."""

    def build(script: "str | Path") -> AppRoot:
        path = Path(script)
        if not path.is_absolute():
            return make_app(tmp_path_factory.mktemp("app"), SCRIPTS / path, entry_name="score.py")
        return make_app(tmp_path_factory.mktemp("app"), path)

    return build
