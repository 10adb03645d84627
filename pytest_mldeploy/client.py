"""An HTTP client for one scoring service, and the `curl` line that replays any request it sent.

The checks talk to a service only through `ScoringClient` so that every request carries the
key the same way and every failure can be replayed from a shell without the secret.
"""
from __future__ import annotations

import hashlib
import shlex
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

import requests

from pytest_mldeploy.server.contract import HEALTH_ROUTE, SCORE_ROUTE, SWAGGER_ROUTE

if TYPE_CHECKING:
    from pytest_mldeploy.core.service import Service

KEY_ENV_VAR = "MLDEPLOY_KEY"
"""The environment variable a `curl` line reads the service key from, so reports never hold it."""

INLINE_BODY_LIMIT = 2000
"""Bodies up to this many bytes of printable UTF-8 go inline in a `curl` line; larger ones go to a file."""

_SKIPPED_CURL_HEADERS = {"user-agent", "accept-encoding", "accept", "connection", "content-length"}


class ScoringClient:
    """Sends requests to one scoring service over a keep-alive session.

    `key` (when the service requires one) is sent as `Authorization: Bearer <key>` on every request.
    """

    def __init__(
        self,
        base_url: str,
        key: Optional[str] = None,
        timeout: float = 30,
        scoring_path: str = SCORE_ROUTE,
        swagger_path: str = SWAGGER_ROUTE,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key or None
        self.timeout = timeout
        self.scoring_url = self.url(scoring_path)
        self.swagger_url = self.url(swagger_path)
        self.session = requests.Session()

    @classmethod
    def from_service(cls, service: "Service", timeout: float = 30) -> "ScoringClient":
        """A client for a deployed `Service`, using its first key and its own scoring and swagger routes."""
        keys = [k for k in (getattr(service, "keys", None) or ()) if k]
        base = service.base_url.rstrip("/")
        return cls(
            base,
            key=keys[0] if keys else None,
            timeout=timeout,
            scoring_path=_path_under(base, service.scoring_uri),
            swagger_path=_path_under(base, service.swagger_uri),
        )

    def url(self, path: str) -> str:
        """The absolute URL of `path` on this service."""
        return self.base_url + "/" + path.lstrip("/")

    def _headers(self, headers: Optional[Mapping[str, str]] = None) -> dict[str, str]:
        merged = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        merged.update(headers or {})
        return merged

    def request(
        self,
        method: str,
        url: str,
        *,
        body: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        params: Optional[Mapping[str, Any]] = None,
    ) -> requests.Response:
        """Send one request with the key added; connection errors propagate as `requests` exceptions."""
        return self.session.request(
            method, url, data=body, headers=self._headers(headers), params=params, timeout=self.timeout
        )

    def score(self, **params: Any) -> requests.Response:
        """POST `params` as a JSON object to the scoring route."""
        return self.session.post(self.scoring_url, json=params, headers=self._headers(), timeout=self.timeout)

    def score_raw(
        self,
        body: bytes,
        content_type: Optional[str] = "application/json",
        method: str = "POST",
        headers: Optional[Mapping[str, str]] = None,
    ) -> requests.Response:
        """Send `body` exactly as given to the scoring route (no Content-Type header when `content_type` is None)."""
        sent = {"Content-Type": content_type} if content_type else {}
        sent.update(headers or {})
        return self.request(method, self.scoring_url, body=body, headers=sent)

    def swagger_response(self, version: int = 2) -> requests.Response:
        """GET the service's swagger document (`version=3` asks for OpenAPI 3)."""
        params = {"version": str(version)} if version != 2 else None
        return self.request("GET", self.swagger_url, params=params)

    def swagger(self, version: int = 2) -> dict:
        """The service's swagger document as a dict; raises `requests.HTTPError` when it is not served."""
        response = self.swagger_response(version)
        response.raise_for_status()
        return response.json()

    def health(self) -> requests.Response:
        """GET / (the liveness route)."""
        return self.request("GET", self.url(HEALTH_ROUTE))

    def health_ok(self) -> bool:
        """True when GET / answers 200; False on any other answer or none."""
        try:
            return self.health().status_code == 200
        except requests.RequestException:
            return False

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "ScoringClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def from_service(service: "Service", timeout: float = 30) -> ScoringClient:
    """A client for a deployed `Service` (same as `ScoringClient.from_service`)."""
    return ScoringClient.from_service(service, timeout)


def _path_under(base_url: str, url: str) -> str:
    if url.startswith(base_url):
        return url[len(base_url):] or "/"
    return urlsplit(url).path


def _printable_text(body: bytes) -> Optional[str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 0x20 and c not in "\t" for c in text):
        return None
    return text


def curl_command(
    method: str,
    url: str,
    body: Optional[Union[bytes, str]] = None,
    headers: Optional[Union[Mapping[str, str], Sequence[tuple[str, str]]]] = None,
    body_dir: Optional[Path] = None,
) -> str:
    """A shell line that replays a request with `curl`.

    The Authorization header becomes `Bearer $MLDEPLOY_KEY` (double-quoted so the shell expands
    it) so the line can be pasted into a CI log. A body of printable UTF-8 up to
    `INLINE_BODY_LIMIT` bytes goes inline with `--data-binary`; anything larger or binary is
    written once (named by its sha256) under `body_dir` (a temporary directory when None) and
    passed as `--data-binary @FILE`.
    """
    parts = ["curl", "-sS", "-i", "-X", shlex.quote(method.upper()), shlex.quote(url)]
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    uses_key = False
    for name, value in items:
        if name.lower() in _SKIPPED_CURL_HEADERS:
            continue
        if name.lower() == "authorization":
            uses_key = True
            continue
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    if uses_key:
        parts += ["-H", f'"Authorization: Bearer ${KEY_ENV_VAR}"']
    if body is not None:
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        text = _printable_text(raw)
        if text is not None and len(raw) <= INLINE_BODY_LIMIT:
            parts += ["--data-binary", shlex.quote(text)]
        else:
            parts += ["--data-binary", shlex.quote("@" + str(_write_body(raw, body_dir)))]
    return " ".join(parts)


def _write_body(body: bytes, body_dir: Optional[Path]) -> Path:
    directory = Path(body_dir) if body_dir else Path(tempfile.gettempdir()) / "mldeploy-requests"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"request-{hashlib.sha256(body).hexdigest()[:16]}.bin"
    if not path.exists():
        path.write_bytes(body)
    return path


def curl_for(request: requests.PreparedRequest, body_dir: Optional[Path] = None) -> str:
    """The `curl` line replaying a request `requests` prepared (what `response.request` holds)."""
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    return curl_command(request.method or "GET", request.url or "", body, request.headers, body_dir)
