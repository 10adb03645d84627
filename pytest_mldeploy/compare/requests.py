"""The one set of requests both sides of a comparison get, in the same order.

- `sample`: the requests `--requests` names, and those `profile.requests` names (the candidate's,
  then the baseline's when it names other ones), read the way the profiler and the samples check
  read them (a `.json` file holding one JSON document, like Azure's `sample-request.json`, is one
  request); when a deployment names no `profile.requests` and no `--requests` is given, Azure's
  own request file (`sample-request*.json` / `sample_request*.json`) found in its `source_directory`
  or the folder above it (inside the project) is used instead, labelled with its path;
- `example`: each side's swagger `ServiceInput` example;
- `generated`: schema-valid requests Hypothesis draws from the baseline's published `ServiceInput`
  (the properties check's strategy), seeded so every run and both sides get the same ones.
  The baseline's schema, because what the deployment in service accepts today must keep working.

`derived_variants` makes a few seeded variants of the sample and example requests (every JSON number
scaled by a factor in [0.5, 1.5]) for the sensitivity gate alone: one sample request is too few to
tell whether an answer depends on its input, and a derived input is no real traffic for the answers gate.

The load for the speed comparison is the profile's workload: the sample requests, else the
swagger example (`checks/profiling/workload.py`), else the generated requests.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pytest_mldeploy.checks.strategies import generated_bodies
from pytest_mldeploy.checks.profiling.workload import JSON_TYPE
from pytest_mldeploy.checks.samples import sample_requests


@dataclass(frozen=True)
class CompareRequest:
    """One request sent to both sides: kind (sample, example or generated), a label, the body and its type."""

    kind: str
    label: str
    body: bytes
    content_type: str = JSON_TYPE

    def json_body(self) -> Any:
        """The body parsed as JSON, None when it is not JSON."""
        if not self.content_type.startswith(JSON_TYPE):
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None


def read_samples(path: Path) -> list[CompareRequest]:
    """The requests a file or folder holds, as `profile.requests` is read; a `.json` file that is one
    JSON document (Azure's `sample-request.json`, however it is indented) is one request."""
    path = Path(path)
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            return [CompareRequest("sample", path.name, json.dumps(json.loads(path.read_bytes())).encode("utf-8"))]
        except ValueError:
            pass  # one body per line, read below
    return [CompareRequest("sample", label, body, content_type) for label, _place, body, content_type in sample_requests(path)]


def _samples(deployment: Any) -> list[CompareRequest]:
    path = getattr(getattr(deployment, "profile", None), "requests", None)
    if not path or not Path(path).exists():
        return []
    return read_samples(Path(path))


#: Azure's samples keep their request file beside (or in) the scoring code folder under these names.
AZURE_REQUEST_PATTERNS = ("sample-request*.json", "sample_request*.json")


def found_request_files(deployment: Any, root: Path) -> list[Path]:
    """Azure's request files for a deployment that names no `profile.requests`: `sample-request*.json`
    (or `sample_request*.json`) in its `source_directory`, then in the folder above it when that is
    still inside the project `root` (Azure keeps `model-1/sample-request.json` beside `model-1/onlinescoring/`)."""
    if getattr(getattr(deployment, "profile", None), "requests", None):
        return []
    source = getattr(deployment, "source_directory", None)
    if source is None:
        return []
    source, root = Path(source).resolve(), Path(root).resolve()
    folders = [source] + ([source.parent] if source != root and source.parent.is_relative_to(root) else [])
    found: list[Path] = []
    for folder in folders:
        for pattern in AZURE_REQUEST_PATTERNS:
            found += sorted(p for p in folder.glob(pattern) if p.is_file() and p not in found)
    return found


def read_found(files: list[Path], root: Path) -> list[CompareRequest]:
    """The requests of files `found_request_files` found, each labelled with its path in the project."""
    out = []
    for path in files:
        shown = os.path.relpath(path, Path(root).resolve())
        out += [CompareRequest(r.kind, shown if r.label == path.name else f"{shown}: {r.label}", r.body, r.content_type)
                for r in read_samples(path)]
    return out


def build_request_set(baseline_deployment: Any, candidate_deployment: Any, baseline_contract: Any,
                      candidate_contract: Any, *, examples: int, seed: int,
                      extra: Optional[Path] = None, found: Optional[list[CompareRequest]] = None) -> list[CompareRequest]:
    """`extra` requests (`--requests`), samples (or the `found` ones of deployments naming none), swagger
    examples and seeded generated requests, each distinct body once."""
    out: list[CompareRequest] = read_samples(extra) if extra is not None else []
    out += _samples(candidate_deployment) + _samples(baseline_deployment) + list(found or [])
    for role, contract in (("baseline", baseline_contract), ("candidate", candidate_contract)):
        if contract is not None and contract.has_example:
            out.append(CompareRequest("example", f"{role}'s swagger example", json.dumps(contract.example).encode("utf-8")))
    schema = baseline_contract.input if baseline_contract is not None else None
    if schema is not None and examples > 0:
        for index, body in enumerate(generated_bodies(schema, examples, seed), 1):
            out.append(CompareRequest("generated", f"generated request {index}", json.dumps(body).encode("utf-8")))
    return _distinct(out)


def _distinct(requests: list[CompareRequest]) -> list[CompareRequest]:
    seen: set[tuple[bytes, str]] = set()
    out = []
    for request in requests:
        key = (request.body, request.content_type)
        if key not in seen:
            seen.add(key)
            out.append(request)
    return out


def _scaled(value: Any, rng: random.Random) -> Any:
    """`value` with every number scaled by its own factor in [0.5, 1.5]; booleans, strings and nulls kept."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return round(value * rng.uniform(0.5, 1.5))
    if isinstance(value, float):
        return value * rng.uniform(0.5, 1.5)
    if isinstance(value, list):
        return [_scaled(item, rng) for item in value]
    if isinstance(value, dict):
        return {key: _scaled(item, rng) for key, item in value.items()}
    return value


def derived_variants(requests: list[CompareRequest], *, count: int, seed: int) -> list[CompareRequest]:
    """`count` seeded variants of the JSON sample and example requests, taken in turn (so a thousand
    samples cost no more than one), for the sensitivity gate only: the same variants every run, none
    equal to a request already in `requests`."""
    bases = [(r, body) for r in requests if r.kind in ("sample", "example") for body in [r.json_body()] if body is not None]
    rng = random.Random(seed)
    seen = {(r.body, r.content_type) for r in requests}
    out: list[CompareRequest] = []
    for index in range(count * 2 if bases else 0):  # a variant equal to a request already sent is drawn again
        if len(out) == count:
            break
        request, body = bases[index % len(bases)]
        variant = json.dumps(_scaled(body, rng)).encode("utf-8")
        if (variant, request.content_type) not in seen:
            seen.add((variant, request.content_type))
            out.append(CompareRequest("derived", f"{request.label} (variant {len(out) + 1})", variant, request.content_type))
    return out


def load_requests(requests: list[CompareRequest]) -> list[tuple[bytes, str]]:
    """The bodies the speed comparison replays: samples, else examples, else generated (the profile's order)."""
    for kind in ("sample", "example", "generated"):
        chosen = [(r.body, r.content_type) for r in requests if r.kind == kind]
        if chosen:
            return chosen
    return []


def counts(requests: list[CompareRequest]) -> dict[str, int]:
    """How many requests of each kind."""
    out: dict[str, int] = {}
    for request in requests:
        out[request.kind] = out.get(request.kind, 0) + 1
    return out


def input_rows(body: Any, count: int) -> Optional[list[Any]]:
    """The input rows of a JSON body that answer `count` output rows: the one list of that length
    among the body's top-level values (`{"data": [[...], [...]]}`), or the body itself when it is such a list."""
    if isinstance(body, list) and len(body) == count:
        return body
    if isinstance(body, dict):
        lists = [value for value in body.values() if isinstance(value, list) and len(value) == count]
        if len(lists) == 1:
            return lists[0]
    return None
