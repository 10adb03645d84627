"""Server settings from the environment and `config.json` in the app root, as Azure ML reads them."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

DEFAULT_APP_ROOT = "/var/azureml-app"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_TIMEOUT_MS = 3_600_000
#: Request line (method, target, version) and header block limits: nginx's and gunicorn's request line
#: limit, and a header total that fits Azure front ends' tens of KB. Beyond them: 414 / 431.
DEFAULT_MAX_REQUEST_LINE_BYTES = 8190
DEFAULT_MAX_HEADER_BYTES = 32 * 1024
#: A request head (line and headers) must be complete this long after it starts, else 408 and close.
DEFAULT_HEADER_TIMEOUT_MS = 10_000
#: run() still running this long after its scoring timeout (its interruption not taken: native code)
#: makes the worker unhealthy; it is then replaced.
DEFAULT_STUCK_GRACE_MS = 5_000

#: Every key that the environment or config.json may set.
KEYS = (
    "AML_APP_ROOT",
    "AZUREML_SOURCE_DIRECTORY",
    "AZUREML_ENTRY_SCRIPT",
    "AZUREML_MODEL_DIR",
    "SERVICE_NAME",
    "SERVICE_VERSION",
    "SERVICE_PATH_PREFIX",
    "SCORING_TIMEOUT_MS",
    "AZUREML_LOG_LEVEL",
    "CORS_ORIGINS",
    "WORKER_COUNT",
    "MLDEPLOY_HOST",
    "MLDEPLOY_PORT",
    "MLDEPLOY_MAX_BODY_BYTES",
    "MLDEPLOY_MAX_CONCURRENT_REQUESTS",
    "MLDEPLOY_AUTH_KEYS",
    "MLDEPLOY_RUN_INLINE",
    "MLDEPLOY_MAX_REQUEST_LINE_BYTES",
    "MLDEPLOY_MAX_HEADER_BYTES",
    "MLDEPLOY_HEADER_TIMEOUT_MS",
    "MLDEPLOY_STUCK_GRACE_MS",
    "MLDEPLOY_SCORER",
)


class SettingsError(ValueError):
    """A setting has a value the server cannot use; the message names the key and the fix."""


@dataclass(frozen=True)
class Settings:
    """What the server needs to know, resolved to absolute paths and typed values."""

    app_root: Path
    source_dir: Path
    entry_script: Path
    model_dir: Optional[str]
    service_name: str = "ML service"
    service_version: str = "1.0"
    path_prefix: str = ""
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    log_level: str = "INFO"
    cors_origins: tuple[str, ...] = ()
    workers: int = 1
    host: str = "127.0.0.1"
    port: int = 5001
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Azure's max_concurrent_requests_per_instance; 0 means unlimited.
    max_concurrent_requests: int = 0
    auth_keys: tuple[str, ...] = field(default=(), repr=False)
    run_inline: bool = False
    max_request_line_bytes: int = DEFAULT_MAX_REQUEST_LINE_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout_ms: int = DEFAULT_HEADER_TIMEOUT_MS
    stuck_grace_ms: int = DEFAULT_STUCK_GRACE_MS
    #: No entry script: the built-in scorer's description, relative to the app root (server/nocode/).
    scorer_spec: Optional[str] = None


def load_settings(environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Read the settings: the environment wins over `AML_APP_ROOT/config.json`, which wins over defaults."""
    env = dict(os.environ if environ is None else environ)
    app_root = Path(env.get("AML_APP_ROOT") or DEFAULT_APP_ROOT).resolve()
    values = {**_read_config_json(app_root), **{k: v for k, v in env.items() if k in KEYS and v != ""}}

    source = values.get("AZUREML_SOURCE_DIRECTORY")
    source_dir = (app_root / source).resolve() if source else app_root
    entry_script = (source_dir / values.get("AZUREML_ENTRY_SCRIPT", "score.py")).resolve()
    return Settings(
        app_root=app_root,
        source_dir=source_dir,
        entry_script=entry_script,
        model_dir=values.get("AZUREML_MODEL_DIR"),
        service_name=values.get("SERVICE_NAME", "ML service"),
        service_version=values.get("SERVICE_VERSION", "1.0"),
        path_prefix=_path_prefix(values.get("SERVICE_PATH_PREFIX", "")),
        timeout_ms=_positive_int(values, "SCORING_TIMEOUT_MS", DEFAULT_TIMEOUT_MS),
        log_level=str(values.get("AZUREML_LOG_LEVEL", "INFO")).upper(),
        cors_origins=_csv(values.get("CORS_ORIGINS", "")),
        workers=_positive_int(values, "WORKER_COUNT", 1),
        host=str(values.get("MLDEPLOY_HOST", "127.0.0.1")),
        port=_positive_int(values, "MLDEPLOY_PORT", 5001),
        max_body_bytes=_positive_int(values, "MLDEPLOY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        max_concurrent_requests=(_positive_int(values, "MLDEPLOY_MAX_CONCURRENT_REQUESTS", 1)
                                 if values.get("MLDEPLOY_MAX_CONCURRENT_REQUESTS") not in (None, "0") else 0),
        auth_keys=_csv(values.get("MLDEPLOY_AUTH_KEYS", "")),
        run_inline=str(values.get("MLDEPLOY_RUN_INLINE", "")).lower() in ("1", "true", "yes"),
        max_request_line_bytes=_positive_int(values, "MLDEPLOY_MAX_REQUEST_LINE_BYTES", DEFAULT_MAX_REQUEST_LINE_BYTES),
        max_header_bytes=_positive_int(values, "MLDEPLOY_MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES),
        header_timeout_ms=_positive_int(values, "MLDEPLOY_HEADER_TIMEOUT_MS", DEFAULT_HEADER_TIMEOUT_MS),
        stuck_grace_ms=_positive_int(values, "MLDEPLOY_STUCK_GRACE_MS", DEFAULT_STUCK_GRACE_MS),
        scorer_spec=values.get("MLDEPLOY_SCORER") or None,
    )


def _read_config_json(app_root: Path) -> dict[str, str]:
    path = app_root / "config.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: cannot be read as JSON ({exc}); fix or remove the file") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must hold a JSON object of settings such as {{\"SCORING_TIMEOUT_MS\": 5000}}")
    return {str(k): v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)
            for k, v in data.items() if k in KEYS and v is not None}


def _positive_int(values: Mapping[str, object], key: str, default: int) -> int:
    raw = values.get(key)
    if raw is None:
        return default
    try:
        number = int(str(raw).strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise SettingsError(f"{key}={raw!r}: must be a positive whole number")
    return number


def _csv(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str) and raw.startswith("["):
        try:
            return tuple(str(item).strip() for item in json.loads(raw) if str(item).strip())
        except ValueError:
            pass
    return tuple(part.strip() for part in str(raw).split(",") if part.strip())


def _path_prefix(raw: str) -> str:
    prefix = raw.strip().strip("/")
    return f"/{prefix}" if prefix else ""
