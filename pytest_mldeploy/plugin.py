"""pytest hooks and fixtures: `pytest --mldeploy` collects `mldeploy.yaml` files as check items.

Thin wiring: the collection tree and how a failed check shows are in `pytest_items.py`, the one
`CheckRunner` per project in `pytest_runners.py`, which files are collected in `config_files.py`
and the final table in `summary.py`. Without `--mldeploy` nothing is collected and nothing is
imported beyond these small modules (pytest and the standard library only), so the plugin costs
nothing in other test runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest

from pytest_mldeploy.config_files import CONFIG_NAMES, deployment_line, unclaimed_online_deployment
from pytest_mldeploy.pytest_items import (
    PROPERTY,
    CheckFailed,
    CheckItem,
    CompareItem,
    DeploymentCollector,
    MldeployFile,
    MldeployWarning,
)
from pytest_mldeploy.pytest_runners import RUNNERS, option, runner_for

if TYPE_CHECKING:
    from pytest_mldeploy.client import ScoringClient
    from pytest_mldeploy.core.config import Deployment, Project
    from pytest_mldeploy.core.image import BuiltImage
    from pytest_mldeploy.core.registry import Registry
    from pytest_mldeploy.core.service import Service

__all__ = [
    "CONFIG_NAMES", "PROPERTY", "CheckFailed", "CheckItem", "CompareItem", "DeploymentCollector", "MldeployFile",
    "MldeployWarning", "deployment_line",
]

_CLAIMED = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mldeploy", "model deployment checks (pytest-mldeploy)")
    group.addoption("--mldeploy", action="store_true",
                    help="collect mldeploy.yaml files and Azure ML v2 deployment YAML files: deploy each deployment and run the built-in checks")
    group.addoption("--mldeploy-target", choices=["auto", "docker", "process"], default=None,
                    help="where services run: docker, a local process, or auto (docker when an engine answers) [ini: mldeploy_target]")
    group.addoption("--mldeploy-config", metavar="PATH", default=None,
                    help="the mldeploy.yaml (or Azure ML v2 deployment YAML) to use [ini: mldeploy_config]")
    group.addoption("--mldeploy-deployment", metavar="NAME", action="append", default=[], help="only this deployment (repeatable)")
    group.addoption("--mldeploy-examples", metavar="N", type=int, default=None, help="Hypothesis examples per property check [ini: mldeploy_examples]")
    group.addoption("--mldeploy-report", metavar="DIR", default=None, help="write profile reports and results here [ini: mldeploy_report]")
    group.addoption("--mldeploy-keep", action="store_true", help="leave the services running after the run, printing their URLs")
    group.addoption("--mldeploy-seed", metavar="N", type=int, default=None, help="seed for generated requests (default: fixed)")
    group.addoption("--mldeploy-baseline", metavar="BASELINE", default=None,
                    help="also compare each deployment against BASELINE (git:main, a deployment, a v2 blue/green name, "
                         "image:TAG): one `compare` item per deployment, failing when a rollout gate fails")
    parser.addini("mldeploy_target", "default for --mldeploy-target", default="auto")
    parser.addini("mldeploy_config", "default for --mldeploy-config", default="")
    parser.addini("mldeploy_examples", "default for --mldeploy-examples", default="50")
    parser.addini("mldeploy_report", "default for --mldeploy-report", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mldeploy: a built-in deployment check collected from mldeploy.yaml")
    config.stash[RUNNERS] = {}
    if config.getoption("mldeploy") or option(config, "config"):
        config.pluginmanager.register(_Summary(config), "mldeploy-summary")
    explicit = option(config, "config")
    if config.getoption("mldeploy") and explicit:
        path = Path(explicit).resolve()
        roots = [Path(a.split("::")[0]).resolve() for a in config.args]
        if not any(path == r or r in path.parents for r in roots):
            config.args.append(str(path))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Optional["MldeployFile"]:
    config = parent.config
    if not config.getoption("mldeploy"):
        return None
    explicit = option(config, "config")
    if explicit:
        wanted = file_path.resolve() == Path(explicit).resolve()
    else:
        wanted = file_path.name in CONFIG_NAMES or unclaimed_online_deployment(file_path, config.stash.setdefault(_CLAIMED, {}))
    return MldeployFile.from_parent(parent, path=file_path) if wanted else None


class _Summary:
    """Gathers check outcomes from test reports (which also arrive from xdist workers) for the final table."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.deployments: dict[str, dict] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from pytest_mldeploy.summary import record_outcome

        for key, value in getattr(report, "user_properties", ()):
            if key == PROPERTY and report.when == "call":
                record_outcome(self.deployments, value, report.outcome)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from pytest_mldeploy.summary import summary_lines

        for runner in self.config.stash[RUNNERS].values():
            for line in runner.close():
                terminalreporter.write_line(line)
        if self.deployments:
            terminalreporter.section("mldeploy")
            for line in summary_lines(self.deployments):
                terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    for runner in config.stash.get(RUNNERS, {}).values():
        runner.close()


# ---- fixtures for hand-written tests ------------------------------------------------------------

@pytest.fixture(scope="session")
def mldeploy_project(pytestconfig: pytest.Config) -> "Project":
    """The parsed `mldeploy.yaml`: --mldeploy-config, or the nearest one above the tests being run."""
    return runner_for(pytestconfig).project


@pytest.fixture(scope="session")
def mldeploy_registry(mldeploy_project: "Project") -> "Registry":
    """The project's local model registry."""
    from pytest_mldeploy.core.registry import Registry

    return Registry.for_project(mldeploy_project)


def _default_deployment(config: pytest.Config, project: "Project") -> str:
    """The first --mldeploy-deployment, else the project's only deployment (`Project.deployment` chooses)."""
    from pytest_mldeploy.errors import ConfigError

    only = config.getoption("mldeploy_deployment")
    try:
        return project.deployment(
            only[0] if only else None, "pick one with --mldeploy-deployment NAME or parametrize the fixture indirectly"
        ).name
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def mldeploy_deployment(mldeploy_project: "Project", pytestconfig: pytest.Config) -> Callable[[Optional[str]], "Deployment"]:
    """`mldeploy_deployment(name=None)`: a deployment's parsed configuration (the default one when no name)."""
    def get(name: Optional[str] = None) -> "Deployment":
        return mldeploy_project.deployments[name or _default_deployment(pytestconfig, mldeploy_project)]

    return get


@pytest.fixture(scope="session")
def mldeploy_image(mldeploy_project: "Project", mldeploy_registry: "Registry", pytestconfig: pytest.Config) -> "BuiltImage":
    """The default deployment's service image (built once; reused when its inputs are unchanged)."""
    from pytest_mldeploy.core.image import build_image

    name = _default_deployment(pytestconfig, mldeploy_project)
    return build_image(mldeploy_project.deployments[name], mldeploy_project, mldeploy_registry)


@pytest.fixture(scope="session")
def mldeploy_service(request: pytest.FixtureRequest, mldeploy_project: "Project") -> "Service":
    """The default deployment's running service, started once per session and shared with the built-in checks."""
    runner = runner_for(request.config, mldeploy_project.config_path)
    name = getattr(request, "param", None) or _default_deployment(request.config, mldeploy_project)
    return runner.service(name)


@pytest.fixture
def scoring_client(mldeploy_service: "Service") -> "ScoringClient":
    """A client for the default deployment's service: `.score(**params)`, `.score_raw(...)`, `.swagger()`, `.health()`."""
    from pytest_mldeploy.client import ScoringClient

    return ScoringClient.from_service(mldeploy_service)
