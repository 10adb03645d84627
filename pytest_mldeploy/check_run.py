"""Deploy each deployment once per run, run checks against it, and remember what happened.

This is what `pytest --mldeploy` and `mldeploy check` share: the plugin only maps its hooks onto
a `CheckRunner`. The checks of one deployment share one `CheckContext`, so its swagger document
is fetched once. A deployment that fails to start is tried once; every check of it then fails at
once instead of waiting for its own timeout, the first with the reason and log tail, the others
with one line pointing to it. A service that dies during a check (exit code, signal, OOM kill)
fails that check with the death first; the checks after it fail at once, pointing to it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks import all_checks
from pytest_mldeploy.errors import MldeployError

if TYPE_CHECKING:
    from pytest_mldeploy.core.config import Project
    from pytest_mldeploy.core.service import Service
    from pytest_mldeploy.core.targets import Target

Notice = Callable[[str], None]


@dataclass
class DeploymentRecord:
    """What one run saw of one deployment: for the terminal summary and the JSON report."""

    name: str
    state: str = "not started"
    target: str = ""
    image: str = ""
    scoring_uri: str = ""
    deploy_seconds: float = 0.0
    results: dict[str, CheckResult] = field(default_factory=dict)
    start_failure_shown_in: str = ""
    """The check whose report holds the full start failure (the others point to it)."""
    died_in: str = ""
    """The check during which the service died after a healthy start."""
    death: str = ""

    @property
    def passed(self) -> int:
        return sum(r.outcome is Outcome.PASSED for r in self.results.values())


class CheckRunner:
    """Starts services lazily (once each), runs checks on them, and deletes them at `close()`."""

    def __init__(
        self,
        project: "Project",
        *,
        target: str = "auto",
        keep: bool = False,
        examples: int = 50,
        report_dir: Optional[Path] = None,
        seed: Optional[int] = None,
        notice: Notice = print,
    ) -> None:
        self.project = project
        self.target_kind = target
        self.keep = keep
        self.examples = examples
        self.report_dir = report_dir
        self.seed = seed
        self.notice = notice
        self.records: dict[str, DeploymentRecord] = {}
        self._target: Optional["Target"] = None
        self._services: dict[str, "Service"] = {}
        self._failures: dict[str, MldeployError] = {}
        self._contexts: dict[str, CheckContext] = {}

    @property
    def target(self) -> "Target":
        if self._target is None:
            from pytest_mldeploy.core.targets import get_target

            self._target = get_target(self.target_kind, notice=self.notice)
        return self._target

    def record(self, name: str) -> DeploymentRecord:
        return self.records.setdefault(name, DeploymentRecord(name=name))

    def service(self, name: str) -> "Service":
        """The running service of deployment `name`, deployed on first use; re-raises a failed start."""
        if name in self._failures:
            raise self._failures[name]
        if name not in self._services:
            record = self.record(name)
            deployment = self.project.deployments[name]
            for line in deployment.notices() if hasattr(deployment, "notices") else ():
                self.notice(f"mldeploy: {name}: {line}")
            started = time.monotonic()
            try:
                service = self.target.deploy(deployment, self.project, keep=self.keep)
            except MldeployError as exc:
                record.state = "Failed"
                record.target = getattr(self.target, "name", "")
                self._failures[name] = exc
                raise
            finally:
                record.deploy_seconds = time.monotonic() - started
            if self.keep:
                from pytest_mldeploy.core import kept

                kept.save(self.project, name, service)
            record.state = str(service.state)
            record.target = service.target
            record.image = service.image or ""
            record.scoring_uri = service.scoring_uri
            self._services[name] = service
        return self._services[name]

    def start_failure(self, name: str, check: str, error: MldeployError) -> str:
        """The text a check of a deployment that did not start fails with: in full once, then one line."""
        record = self.record(name)
        if not record.start_failure_shown_in or record.start_failure_shown_in == check:
            record.start_failure_shown_in = check
            return f"{name}: {check}: the service did not start\n\n{error}"
        headline = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (f"{name}: {check}: the service did not start: {headline} "
                f"(the log tail is in the report of {name}::{record.start_failure_shown_in})")

    def context(self, name: str) -> CheckContext:
        """The context the checks of deployment `name` share (deploying it first if needed)."""
        from pytest_mldeploy.client import ScoringClient

        if name in self._contexts:
            return self._contexts[name]
        service = self.service(name)
        self._contexts[name] = CheckContext(
            project=self.project,
            deployment=self.project.deployments[name],
            service=service,
            client=ScoringClient.from_service(service),
            target=self.target,
            examples=self.examples,
            report_dir=self.report_dir / name if self.report_dir else None,
            seed=self.seed,
        )
        return self._contexts[name]

    def run_check(self, name: str, check: str) -> CheckResult:
        """Run built-in check `check` on deployment `name` (deploying it first if needed).

        A service that died in an earlier check fails this one at once; one that dies during this
        check fails it, with the death (exit code, signal, OOM kill) before the check's own report.
        """
        record = self.record(name)
        if record.died_in and record.died_in != check:
            headline = record.death.splitlines()[0]
            summary = (f"the service died during the {record.died_in} check ({headline}); "
                       f"see the report of {name}::{record.died_in}")
            result = CheckResult(check, Outcome.FAILED, summary, died=record.death)
        else:
            result = all_checks()[check](self.context(name))
            service = self._services.get(name)
            if service is not None:
                result = self._note_death(result, service)
                record.state = str(service.state)
                if result.died:
                    record.died_in, record.death = check, result.died
        record.results[check] = result
        return result

    @staticmethod
    def _note_death(result: CheckResult, service: "Service") -> CheckResult:
        """`result`, failed with the death first when the service died during the check without it saying so."""
        from pytest_mldeploy.checks.failure_report import death_problem, death_report
        from pytest_mldeploy.core.service import ServiceState

        state = service.refresh_state()
        if result.died or state is ServiceState.HEALTHY or not service.was_healthy:
            return result
        died = service.death()
        if not died:
            return result
        during = f"during the {result.name} check"
        report = death_report(result.name, died, service=service, during=during)
        own = result.report or result.summary
        if own:
            report += f"\n\nwhat the {result.name} check saw:\n" + "\n".join("    " + line for line in own.splitlines())
        return replace(result, outcome=Outcome.FAILED, summary=death_problem(died, during=during), report=report, died=died)

    def close(self) -> list[str]:
        """Delete the services this run started (or keep them, with their URLs); returns lines to show."""
        lines = []
        for name, service in self._services.items():
            if self.keep:
                lines.append(f"mldeploy: kept '{name}' running: scoring_uri: {service.scoring_uri} "
                             f"(stop it with `mldeploy delete {name}`)")
            else:
                service.delete()
        for context in self._contexts.values():
            context.client.close()
        self._contexts.clear()
        self._services.clear()
        return lines
