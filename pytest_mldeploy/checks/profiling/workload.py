"""What the profiler sends: the deployment's requests file, or the swagger example when it has none.

A requests file holds one request body per line (Azure ML's profiling dataset format); blank
lines are skipped. Without one, the service's own `GET /swagger.json` example
(`definitions.ServiceInput.example`) is the only request.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from pytest_mldeploy.errors import ConfigError


def read_request_file(path: Path, where: str = "profile.requests") -> list[bytes]:
    """The non-blank lines of a requests file, or a `ConfigError` naming the file and the fix."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: {path} cannot be read ({exc.strerror}); point it at a file with one request body per line") from None
    bodies = [line.strip() for line in raw.splitlines() if line.strip()]
    if not bodies:
        raise ConfigError(f"{where}: {path} holds no request bodies; write one JSON request body per line")
    return bodies


def swagger_example(swagger: Any) -> Optional[bytes]:
    """The `ServiceInput` example of a Swagger 2 (or OpenAPI 3) document as a JSON body, None when absent."""
    if not isinstance(swagger, dict):
        return None
    definitions = swagger.get("definitions") or (swagger.get("components") or {}).get("schemas") or {}
    service_input = definitions.get("ServiceInput") if isinstance(definitions, dict) else None
    if not isinstance(service_input, dict) or "example" not in service_input:
        return None
    return json.dumps(service_input["example"]).encode("utf-8")


def workload_bodies(deployment: Any, swagger: Any, config_hint: str = "mldeploy.yaml") -> tuple[list[bytes], str]:
    """The bodies to replay and where they came from (for the report)."""
    path = getattr(getattr(deployment, "profile", None), "requests", None)
    name = getattr(deployment, "name", "?")
    if path:
        bodies = read_request_file(Path(path), f"{config_hint}: deployments.{name}.profile.requests")
        return bodies, f"{path} ({len(bodies)} request bodies)"
    example = swagger_example(swagger)
    if example is None:
        raise ConfigError(
            f"{config_hint}: deployments.{name}.profile.requests: not set, and the service's /swagger.json has no "
            "ServiceInput example to replay; set profile.requests to a file with one request body per line "
            "(or declare an input_schema in the entry script)"
        )
    return [example], "the swagger example (definitions.ServiceInput.example; set profile.requests for real traffic)"


def write_bodies(bodies: list[bytes], path: Path) -> Path:
    """Write bodies one per line for the Locust process to read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(bodies) + b"\n")
    return path
