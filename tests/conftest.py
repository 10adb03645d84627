"""Suite-wide policy and provisioning, so `python -m pytest -ra` on a fresh machine is the whole set-up.

- Where a Docker engine answers, tests marked `docker` must run, not skip (under CI a skip fails the run).
- Before docker tests run, the offline base image is built when it is missing
  (`mldeploy base-image --if-missing`, which installs mmdebstrap with apt-get when it can).
- Tools a test drives (chromium) come from the `system_tool` fixture: found on PATH, else
  installed with apt-get when we are root, else the test skips saying what to install.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import pytest

pytest_plugins = ["pytester"]

_skipped_docker: list[str] = []


def _docker_client():  # type: ignore[no-untyped-def]
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        return client
    except Exception:
        return None


def _docker_answers() -> bool:
    client = _docker_client()
    if client is None:
        return False
    client.close()
    return True


def pytest_configure(config: pytest.Config) -> None:
    config._mldeploy_docker_required = bool(os.environ.get("CI")) and _docker_answers()  # type: ignore[attr-defined]


def _say(config: pytest.Config, line: str, **markup: bool) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line, **markup)


def _base_image_missing(client, tag: str) -> bool:  # type: ignore[no-untyped-def]
    import docker

    try:
        client.images.get(tag)
        return False
    except docker.errors.ImageNotFound:
        return True


def provision_base_image(config: pytest.Config, tag: Optional[str] = None) -> Optional[str]:
    """Build the offline base image `tag` (default: the one builds fall back to) when it is missing, once
    per machine (a file lock serialises xdist workers and concurrent runs); returns why it failed, or None."""
    from pytest_mldeploy.core.base_image import LOCAL_BASE_TAG

    tag = tag or LOCAL_BASE_TAG
    client = _docker_client()
    if client is None:
        return None
    try:
        if not _base_image_missing(client, tag):
            return None
        with open(Path(tempfile.gettempdir()) / "mldeploy-test-base-image.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _base_image_missing(client, tag):
                return None
            _say(config, f"mldeploy: the docker tests need the base image {tag}; building it from Debian "
                         "packages (`mldeploy base-image --if-missing`, about a minute, once)")
            proc = subprocess.Popen([sys.executable, "-m", "pytest_mldeploy.cli", "base-image", "--if-missing", "--tag", tag],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            lines = []
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.append(line.rstrip())
                _say(config, "  " + line.rstrip())
            if proc.wait() != 0:
                return "\n".join(lines[-10:])
            return None
    finally:
        client.close()


def pytest_collection_finish(session: pytest.Session) -> None:
    if not any("docker" in item.keywords for item in session.items):
        return
    failure = provision_base_image(session.config)
    if failure:
        _say(session.config, "ERROR: the base image could not be built, so the docker tests will fail:\n" + failure, red=True)


@pytest.fixture(scope="session")
def system_tool(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """`system_tool(command, package, purpose)`: the path of `command`, installed from Debian `package`
    with a notice when it is missing and we are root; the test skips, naming the package, where it
    cannot be installed (not root, no apt-get), and fails when apt-get fails."""
    import shutil

    from pytest_mldeploy.core.debian_rootfs import apt_install
    from pytest_mldeploy.errors import BuildError

    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def say(message: str) -> None:
        with capture.global_and_fixture_disabled():
            _say(request.config, f"\nmldeploy tests: {message}")

    def get(command: str, package: str, purpose: str) -> str:
        found = shutil.which(command)
        if found:
            return found
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            why = "not root" if shutil.which("apt-get") else "no apt-get"
            pytest.skip(f"{command} ({purpose}) is not installed and cannot be installed here ({why}): "
                        f"`sudo apt-get install {package}`")
        try:
            return apt_install(package, command, purpose, progress=say)
        except BuildError as exc:
            pytest.fail(str(exc))

    return get


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "docker" in report.keywords:
        _skipped_docker.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if getattr(session.config, "_mldeploy_docker_required", False) and _skipped_docker:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"ERROR: a Docker engine answers but {len(_skipped_docker)} docker test(s) were skipped "
                f"(CI requires them to run): {', '.join(_skipped_docker[:10])}",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
