"""The documented differences between our server and Azure's azmlinfsrv, as matchers.

A `Difference` is how the two servers answered one `ParityRequest` (each an `Answer`) differently.
Each entry of `KNOWN` says which requests (kinds), which status pair (ours, Azure's) and which
bodies (regular expressions) it covers, and where docs/server.md documents it. `mldeploy parity`
calls a difference known only when an entry matches it; tests check that every entry is in the docs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from pytest_mldeploy.server.contract import SCORE_ROUTE

#: The section of docs/server.md that lists these entries by id.
DOC = "docs/server.md#parity-with-azures-server"

SCRIPT_ERROR = r"An unexpected error occurred in scoring script"


@dataclass(frozen=True)
class ParityRequest:
    """One request sent to both servers. `kind`: sample, generated, schema-rejected, malformed or route."""

    kind: str
    label: str
    body: Optional[bytes] = None
    content_type: Optional[str] = "application/json"
    method: str = "POST"
    path: str = SCORE_ROUTE


@dataclass(frozen=True)
class Answer:
    """What a client sees of one response (or why there was none)."""

    status: Optional[int]
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    error: Optional[str] = None

    def header(self, name: str) -> Optional[str]:
        return dict(self.headers).get(name)

    def shown(self, limit: int = 160) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        text = self.body.decode("utf-8", "replace")
        return f"{self.status} {text[:limit]}{'…' if len(text) > limit else ''}"


@dataclass
class Difference:
    """How the two servers answered one request differently, and whether that is documented."""

    request: ParityRequest
    aspects: list[str]
    ours: Answer
    azure: Answer
    known: Optional["KnownDifference"] = None


@dataclass(frozen=True)
class KnownDifference:
    """One documented difference: kinds of request, (ours, azure) statuses and body patterns."""

    id: str
    summary: str
    kinds: frozenset[str]
    ours_status: Optional[int]
    azure_status: Optional[int]
    ours_body: str = ""
    azure_body: str = ""

    @property
    def doc(self) -> str:
        return f"{DOC} ({self.id})"

    def matches(self, difference: "Difference") -> bool:
        request, ours, azure = difference.request, difference.ours, difference.azure
        return (request.kind in self.kinds
                and ours.status == self.ours_status and azure.status == self.azure_status
                and re.search(self.ours_body, ours.body.decode("utf-8", "replace")) is not None
                and re.search(self.azure_body, azure.body.decode("utf-8", "replace")) is not None)


_BAD = frozenset({"schema-rejected", "malformed"})

KNOWN: tuple[KnownDifference, ...] = (
    KnownDifference("schema-400-vs-500", "input the published ServiceInput rejects: ours 400 naming the JSON pointer, "
                    "Azure's 500 (inference_schema fails inside run())",
                    _BAD, 400, 500, r"Invalid value for the '[^']+' parameter", SCRIPT_ERROR),
    KnownDifference("schema-400-vs-200", "input the published ServiceInput rejects that inference_schema lets through "
                    "to the model on Azure's server (200 with whatever the model made of it)",
                    _BAD, 400, 200, r"Invalid value for the '[^']+' parameter"),
    KnownDifference("json-decode-400-vs-500", "a body Python's JSON reader cannot turn into values (nested past the "
                    "parser's limit, an integer past 4,300 digits, a number beyond float64, invalid UTF-8): ours 400 "
                    "naming the reason, Azure's 500", _BAD, 400, 500,
                    r"POST body could not be decoded as JSON", r"An unexpected (internal )?error occurred"),
    KnownDifference("body-limit-413", "a body over max_body_bytes: ours 413 before reading it, Azure's server has "
                    "no limit of its own and answers what run() makes of it",
                    _BAD, 413, 500, r"Request body is larger than", SCRIPT_ERROR),
    KnownDifference("nan-output-500-vs-200", "run() returns NaN/Infinity: ours 500 (not strict JSON), Azure's 200 with "
                    "an invalid JSON body", frozenset({"sample", "generated", "schema-rejected", "malformed"}),
                    500, 200, r"output cannot be sent as JSON", r"NaN|Infinity"),
    KnownDifference("not-found-headers", "unknown path: both 404 with Werkzeug's message; Azure's sends "
                    "x-ms-run-function-failed and no x-ms-request-id, ours the reverse",
                    frozenset({"route"}), 404, 404, r"requested URL was not found", r"requested URL was not found"),
)


def match(difference: "Difference") -> Optional[KnownDifference]:
    """The documented entry covering `difference`, or None (an unknown difference)."""
    for known in KNOWN:
        if known.matches(difference):
            return known
    return None

