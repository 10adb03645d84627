"""The pytest collection tree of `pytest --mldeploy`: a config file, one collector per deployment,
one item per built-in check (and a `compare` item with `--mldeploy-baseline`), and how a failed
check shows in pytest's report.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import pytest
from _pytest._code.code import ReprFileLocation, TerminalRepr

from pytest_mldeploy.config_files import deployment_line
from pytest_mldeploy.pytest_runners import notice, option, runner_for

if TYPE_CHECKING:
    from pytest_mldeploy.check_run import CheckRunner
    from pytest_mldeploy.checks.base import CheckResult

#: The user property each check item records its outcome under, for the final table.
PROPERTY = "mldeploy"


class MldeployWarning(pytest.PytestWarning):
    """A finding of a built-in check that does not fail it (shown in pytest's warnings summary)."""


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
        line = deployment_line(self.path, self.name)
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


class _ReportingItem(pytest.Item):
    """An item of one deployment, at its line in the config, whose `CheckFailed` shows its whole report
    with its one-line summary as the crash message."""

    def __init__(self, *, deployment: str, line: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.line = line

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CheckFailed):
            path, line, _ = self.reportinfo()
            return _CheckFailure(excinfo.value.report, str(excinfo.value), str(path), (line or 0) + 1)
        return super().repr_failure(excinfo)


class CheckItem(_ReportingItem):
    """`mldeploy.yaml::DEPLOYMENT::CHECK`: runs one built-in check on the deployment's service."""

    def __init__(self, *, check: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def runtest(self) -> None:
        from pytest_mldeploy.checks.base import Outcome
        from pytest_mldeploy.errors import MldeployError

        runner = runner_for(self.config, self.path)
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

    def __init__(self, *, baseline: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.baseline = baseline

    def runtest(self) -> None:
        from pytest_mldeploy.compare import format_summary, run_compare
        from pytest_mldeploy.compare.publish import publish_markdown
        from pytest_mldeploy.errors import MldeployError

        report = option(self.config, "report")
        out = Path(report or "mldeploy-report").resolve() / "compare" / self.deployment
        try:
            result = run_compare(self.baseline, self.deployment, config=self.path, target=option(self.config, "target") or "auto",
                                 out=out, progress=notice(self.config))
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
