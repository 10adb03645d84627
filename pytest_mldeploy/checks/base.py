"""What every built-in check takes and returns, so the plugin and the CLI can run any of them alike."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from pytest_mldeploy.client import ScoringClient
    from pytest_mldeploy.core.config import Deployment, Project
    from pytest_mldeploy.core.service import Service
    from pytest_mldeploy.core.targets import Target


class Outcome(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class CheckContext:
    """A running service and what a check may need around it."""

    project: "Project"
    deployment: "Deployment"
    service: "Service"
    client: "ScoringClient"
    target: Optional["Target"] = None
    examples: int = 50
    report_dir: Optional[Path] = None
    seed: Optional[int] = None


@dataclass
class CheckResult:
    """The verdict of one check on one deployment.

    `report` is the text shown to a person when the check fails (or the reason it was skipped):
    the minimal failing request, the response, the service log tail and a `curl` line.
    `warnings` are findings that do not fail the check; `figures` are numbers worth a summary line.
    `died` is why the service died during the check (exit code, signal, OOM), when it did.
    """

    name: str
    outcome: Outcome
    summary: str = ""
    report: str = ""
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    died: Optional[str] = None

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


Check = Callable[[CheckContext], CheckResult]
