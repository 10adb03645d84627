"""pytest hooks and fixtures: `pytest --mldeploy` collects `mldeploy.yaml` files as check items.

Thin wiring over `pytest_mldeploy.check_run.CheckRunner`; without `--mldeploy` nothing is collected
and nothing is imported beyond this module, so the plugin costs nothing in other test runs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import pytest
from _pytest._code.code import ReprFileLocation, TerminalRepr

if TYPE_CHECKING:
    from pytest_mldeploy.check_run import CheckRunner
    from pytest_mldeploy.checks.base import CheckResult
    from pytest_mldeploy.client import ScoringClient
    from pytest_mldeploy.core.config import Deployment, Project
    from pytest_mldeploy.core.image import BuiltImage
    from pytest_mldeploy.core.registry import Registry
    from pytest_mldeploy.core.service import Service

CONFIG_NAMES = ("mldeploy.yaml", "mldeploy.yml")
_RUNNERS = pytest.StashKey[dict]()
PROPERTY = "mldeploy"


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


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(f"mldeploy_{name}")
    if value in (None, ""):
        value = config.getini(f"mldeploy_{name}") or None
    return value


class MldeployWarning(pytest.PytestWarning):
    """A finding of a built-in check that does not fail it (shown in pytest's warnings summary)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mldeploy: a built-in deployment check collected from mldeploy.yaml")
    config.stash[_RUNNERS] = {}
    if config.getoption("mldeploy") or _option(config, "config"):
        config.pluginmanager.register(_Summary(config), "mldeploy-summary")
    explicit = _option(config, "config")
    if config.getoption("mldeploy") and explicit:
        path = Path(explicit).resolve()
        roots = [Path(a.split("::")[0]).resolve() for a in config.args]
        if not any(path == r or r in path.parents for r in roots):
            config.args.append(str(path))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Optional["MldeployFile"]:
    config = parent.config
    if not config.getoption("mldeploy"):
        return None
    explicit = _option(config, "config")
    if explicit:
        wanted = file_path.resolve() == Path(explicit).resolve()
    else:
        wanted = file_path.name in CONFIG_NAMES or _unclaimed_online_deployment(config, file_path)
    return MldeployFile.from_parent(parent, path=file_path) if wanted else None


_CLAIMED = pytest.StashKey[dict]()


def _unclaimed_online_deployment(config: pytest.Config, file_path: Path) -> bool:
    """An Azure ML v2 deployment YAML that no `mldeploy.yaml` above it names with `online_deployment`."""
    if file_path.suffix.lower() not in (".yml", ".yaml"):
        return False
    from pytest_mldeploy.core import azure_v2

    if not azure_v2.is_deployment_file(file_path):
        return False
    claimed = config.stash.setdefault(_CLAIMED, {})
    real = file_path.resolve()
    for folder in real.parents:
        for name in CONFIG_NAMES:
            candidate = folder / name
            if not candidate.is_file():
                continue
            key = str(candidate)
            if key not in claimed:
                import yaml

                try:
                    data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
                except (yaml.YAMLError, OSError, UnicodeDecodeError):
                    data = None
                claimed[key] = {p.resolve() for p in azure_v2.referenced_deployment_files(candidate, data)}
            if real in claimed[key]:
                return False
    return True


def _runner_for(config: pytest.Config, config_path: Optional[Path] = None) -> "CheckRunner":
    """The one CheckRunner of this pytest process for a project.

    The project is `config_path`, else --mldeploy-config, else the `mldeploy.yaml` nearest above
    the paths given on the command line, else above the rootdir.
    """
    from pytest_mldeploy.core.config import load_project
    from pytest_mldeploy.check_run import CheckRunner

    if config_path is None:
        explicit = _option(config, "config")
        config_path = Path(explicit) if explicit else _nearest_config(config)
    runners = config.stash[_RUNNERS]
    key = str(Path(config_path).resolve())
    if key not in runners:
        report = _option(config, "report")
        runners[key] = CheckRunner(
            load_project(config_path),
            target=_option(config, "target") or "auto",
            keep=config.getoption("mldeploy_keep"),
            examples=int(_option(config, "examples") or 50),
            report_dir=Path(report).resolve() if report else None,
            seed=config.getoption("mldeploy_seed"),
            notice=_notice(config),
        )
    return runners[key]


def _notice(config: pytest.Config) -> Callable[[str], None]:
    """Write a line to the terminal even while a test's output is being captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return print

    def say(line: str) -> None:
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return say


def _nearest_config(config: pytest.Config) -> Path:
    """The `mldeploy.yaml` nearest above the first path run that has one (the rootdir last)."""
    from pytest_mldeploy.core.config import find_config
    from pytest_mldeploy.errors import ConfigError

    starts = [Path(arg.split("::")[0]).resolve() for arg in config.args] + [config.rootpath]
    error: Optional[ConfigError] = None
    for start in starts:
        try:
            return find_config(start if start.is_dir() else start.parent)
        except ConfigError as exc:
            error = error or exc
    assert error is not None
    raise error


class _CheckFailure(TerminalRepr):
    """A failed check as pytest shows it: the whole report, and its one-line summary as the crash
    message (the short summary line, which pytest prints whole on CI)."""

    def __init__(self, report: str, summary: str, path: str, line: int) -> None:
        self.report = report
        self.reprcrash = ReprFileLocation(path, line, summary)

    def toterminal(self, tw: Any) -> None:
        for line in self.report.splitlines():
            tw.line(line)


class CheckFailed(Exception):
    """A built-in check failed: its one-line summary is the message (pytest's short summary, which
    CI runners print whole), its report is what pytest shows for the item."""

    def __init__(self, report: str, summary: str = "") -> None:
        super().__init__(summary or report.strip().splitlines()[0] if report.strip() else summary)
        self.report = report


class MldeployFile(pytest.File):
    """An `mldeploy.yaml`: one collector per deployment."""

    def collect(self) -> Iterator["DeploymentCollector"]:
        from pytest_mldeploy.core.config import load_project

        project = load_project(self.path)
        only = self.config.getoption("mldeploy_deployment")
        unknown = sorted(set(only) - set(project.deployments))
        if unknown:
            from pytest_mldeploy.errors import ConfigError

            raise ConfigError(f"{self.path.name}: --mldeploy-deployment {', '.join(unknown)}: no such deployment; "
                              f"choose from {', '.join(project.deployments)}")
        for name in project.deployments:
            if not only or name in only:
                yield DeploymentCollector.from_parent(self, name=name)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        from pytest_mldeploy.errors import MldeployError

        if isinstance(excinfo.value, MldeployError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class DeploymentCollector(pytest.Collector):
    """One deployment: one item per built-in check."""

    def collect(self) -> Iterator["CheckItem"]:
        from pytest_mldeploy.checks import all_checks

        grouped = self.config.pluginmanager.hasplugin("xdist")
        line = _deployment_line(self.path, self.name)
        items: list[pytest.Item] = [CheckItem.from_parent(self, name=check, deployment=self.name, check=check, line=line)
                                    for check in all_checks()]
        baseline = self.config.getoption("mldeploy_baseline")
        if baseline:
            items.append(CompareItem.from_parent(self, name="compare", deployment=self.name, baseline=baseline, line=line))
        for item in items:
            item.add_marker(pytest.mark.mldeploy)
            if grouped:  # the marker is xdist's: unknown (and warned about) without it
                item.add_marker(pytest.mark.xdist_group(name=f"mldeploy-{self.name}"))
            yield item


def _deployment_line(path: Path, name: str) -> int:
    """The 0-based line of `NAME:` in the config, where warnings about the deployment point (0 if not found)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    keys = (f"{name}:", f'"{name}":', f"'{name}':")
    if path.name not in CONFIG_NAMES:  # an Azure ML v2 deployment file: point at its `name:`
        return next((n for n, text in enumerate(lines) if text.startswith("name:")), 0)
    indent: Optional[int] = None
    inside = False
    for number, text in enumerate(lines):
        content = text.split("#")[0].rstrip()
        if not content:
            continue
        depth = len(text) - len(text.lstrip())
        if depth == 0:
            inside = content == "deployments:"
            continue
        if inside:
            indent = depth if indent is None else indent
            if depth == indent and content.strip() in keys:
                return number
    return 0


class _ReportingItem(pytest.Item):
    """An item whose `CheckFailed` shows its whole report, with its one-line summary as the crash message."""

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CheckFailed):
            path, line, _ = self.reportinfo()
            return _CheckFailure(excinfo.value.report, str(excinfo.value), str(path), (line or 0) + 1)
        return super().repr_failure(excinfo)


class CheckItem(_ReportingItem):
    """`mldeploy.yaml::DEPLOYMENT::CHECK`: runs one built-in check on the deployment's service."""

    def __init__(self, *, deployment: str, check: str, line: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.check = check
        self.line = line

    def runtest(self) -> None:
        from pytest_mldeploy.checks.base import Outcome
        from pytest_mldeploy.errors import MldeployError

        runner = _runner_for(self.config, self.path)
        result = None
        try:
            try:
                result = runner.run_check(self.deployment, self.check)
            except MldeployError as exc:
                raise CheckFailed(runner.start_failure(self.deployment, self.check, exc)) from None
        finally:
            # Whatever pytest decides for this item, the final table reads its outcome from the report.
            self._remember(runner, result)
        for warning in result.warnings:
            self.warn(MldeployWarning(f"{self.deployment}::{self.check}: {warning}"))
        if result.outcome is Outcome.SKIPPED:
            pytest.skip(result.summary or "skipped")
        if result.outcome is Outcome.FAILED:
            report = result.report or result.summary
            if "curl " in report and not runner.keep and not result.died:
                report += "\n(the service stops with this run: add --mldeploy-keep to keep it up for the curl line)"
            raise CheckFailed(report, f"{self.deployment}: {self.check}: {result.summary}" if result.summary else "")

    def _remember(self, runner: "CheckRunner", result: Optional["CheckResult"]) -> None:
        record = runner.record(self.deployment)
        self.user_properties.append((PROPERTY, json.dumps({
            "config": str(self.path), "deployment": self.deployment, "check": self.check,
            "state": record.state, "target": record.target, "image": record.image,
            "figures": result.figures if result is not None else {},
            "warnings": list(result.warnings) if result is not None else [],
        }, default=str)))

    def reportinfo(self) -> tuple[Path, int, str]:
        # A line is required: pytest's Node.warn() asserts one (it points at the deployment's key).
        return self.path, self.line, f"mldeploy: {self.deployment}::{self.check}"


class CompareItem(_ReportingItem):
    """`mldeploy.yaml::DEPLOYMENT::compare`: the deployment against `--mldeploy-baseline` (docs/compare.md)."""

    def __init__(self, *, deployment: str, baseline: str, line: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.baseline = baseline
        self.line = line

    def runtest(self) -> None:
        from pytest_mldeploy.compare import format_summary, run_compare
        from pytest_mldeploy.compare.publish import publish_markdown
        from pytest_mldeploy.errors import MldeployError

        report = _option(self.config, "report")
        out = Path(report or "mldeploy-report").resolve() / "compare" / self.deployment
        try:
            result = run_compare(self.baseline, self.deployment, config=self.path, target=_option(self.config, "target") or "auto",
                                 out=out, progress=_notice(self.config))
        except MldeployError as exc:
            raise CheckFailed(str(exc), f"{self.deployment}: compare: {str(exc).splitlines()[0]}") from None
        data = result.to_dict()
        publish_markdown(data, out / "compare.md")  # beside compare.json: a CI step can post it as a PR comment
        for gate in data["gates"]:
            if gate["status"] == "warn":
                self.warn(MldeployWarning(f"{self.deployment}::compare: {gate['name']}: {gate['message']}"))
        if not result.passed:
            failed = ", ".join(g["name"] for g in data["gates"] if g["status"] == "fail")
            raise CheckFailed(format_summary(data) + f"\ncompare_json: {result.json_path}\ncompare_html: {result.html_path}",
                              f"{self.deployment}: compare against {self.baseline} failed on {failed}")

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.line, f"mldeploy: {self.deployment}::compare against {self.baseline}"


class _Summary:
    """Gathers check outcomes from test reports (which also arrive from xdist workers) for the final table."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.deployments: dict[str, dict] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in getattr(report, "user_properties", ()):
            if key == PROPERTY and report.when == "call":
                data = json.loads(value)
                entry = self.deployments.setdefault(data["deployment"], {})
                entry.setdefault("checks", {})[data["check"]] = report.outcome  # pytest's verdict, so the counts agree
                entry.setdefault("warnings", {})[data["check"]] = len(data.get("warnings", ()))
                entry.update({k: data[k] for k in ("state", "target", "image") if data[k]})
                if data["figures"]:
                    entry.setdefault("figures", {}).update(data["figures"])

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from pytest_mldeploy.summary import summary_lines

        for runner in self.config.stash[_RUNNERS].values():
            for line in runner.close():
                terminalreporter.write_line(line)
        if self.deployments:
            terminalreporter.section("mldeploy")
            for line in summary_lines(self.deployments):
                terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    for runner in config.stash.get(_RUNNERS, {}).values():
        runner.close()


# ---- fixtures for hand-written tests ------------------------------------------------------------

@pytest.fixture(scope="session")
def mldeploy_project(pytestconfig: pytest.Config) -> "Project":
    """The parsed `mldeploy.yaml`: --mldeploy-config, or the nearest one above the tests being run."""
    return _runner_for(pytestconfig).project


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
    runner = _runner_for(request.config, mldeploy_project.config_path)
    name = getattr(request, "param", None) or _default_deployment(request.config, mldeploy_project)
    return runner.service(name)


@pytest.fixture
def scoring_client(mldeploy_service: "Service") -> "ScoringClient":
    """A client for the default deployment's service: `.score(**params)`, `.score_raw(...)`, `.swagger()`, `.health()`."""
    from pytest_mldeploy.client import ScoringClient

    return ScoringClient.from_service(mldeploy_service)
