"""What every built-in check takes and returns, so the plugin and the CLI can run any of them alike."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

if TYPE_CHECKING:
    import requests

    from pytest_mldeploy.checks.published_contract import Contract
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
    """A running service and what a check may need around it.

    The service's swagger document is fetched once per context, on first use, and shared by the
    checks run with it (`swagger_response()`, `contract`); a failure to fetch or read it is kept
    too, so every check that needs it reports the same reason.
    """

    project: "Project"
    deployment: "Deployment"
    service: "Service"
    client: "ScoringClient"
    target: Optional["Target"] = None
    examples: int = 50
    report_dir: Optional[Path] = None
    seed: Optional[int] = None
    _swagger: Union["requests.Response", Exception, None] = field(default=None, init=False, repr=False, compare=False)
    _contract: Union["Contract", Exception, None] = field(default=None, init=False, repr=False, compare=False)

    def swagger_response(self) -> "requests.Response":
        """The service's answer to `GET /swagger.json` (Swagger 2.0), fetched once per context.

        Raises the `requests.RequestException` of the first fetch again when there was no answer.
        """
        import requests

        if self._swagger is None:
            try:
                self._swagger = self.client.swagger_response()
            except requests.RequestException as exc:
                self._swagger = exc
        if isinstance(self._swagger, Exception):
            raise self._swagger
        return self._swagger

    @property
    def contract(self) -> "Contract":
        """What the service's swagger document promises, read once per context.

        Raises `requests.RequestException` when the document is not served and `ValueError` when
        it cannot be read as swagger (the same exception for every check that asks).
        """
        import requests

        from pytest_mldeploy.checks.published_contract import contract_of

        if self._contract is None:
            try:
                self._contract = contract_of(self.swagger_response(), self.client.swagger_url)
            except (requests.RequestException, ValueError) as exc:
                self._contract = exc
        if isinstance(self._contract, Exception):
            raise self._contract
        return self._contract


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
