"""Suite-wide policy: where a Docker engine answers, tests marked `docker` must run, not skip."""
from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]

_skipped_docker: list[str] = []


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def pytest_configure(config: pytest.Config) -> None:
    config._mldeploy_docker_required = bool(os.environ.get("CI")) and _docker_answers()  # type: ignore[attr-defined]


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
