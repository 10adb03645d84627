"""Server settings from the environment and `config.json` in the app root, as Azure ML reads them."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from . import contract as c

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
    host: str = c.DEFAULT_HOST
    port: int = c.DEFAULT_PORT
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
    app_root = Path(env.get(c.APP_ROOT_VAR) or c.DEFAULT_APP_ROOT).resolve()
    values = {**_read_config_json(app_root), **{k: v for k, v in env.items() if k in c.SETTINGS_VARIABLES and v != ""}}

    source = values.get(c.SOURCE_DIRECTORY_VAR)
    source_dir = (app_root / source).resolve() if source else app_root
    entry_script = (source_dir / values.get(c.ENTRY_SCRIPT_VAR, "score.py")).resolve()
    return Settings(
        app_root=app_root,
        source_dir=source_dir,
        entry_script=entry_script,
        model_dir=values.get(c.MODEL_DIR_VAR),
        service_name=values.get(c.SERVICE_NAME_VAR, "ML service"),
        service_version=values.get(c.SERVICE_VERSION_VAR, "1.0"),
        path_prefix=_path_prefix(values.get(c.SERVICE_PATH_PREFIX_VAR, "")),
        timeout_ms=_positive_int(values, c.SCORING_TIMEOUT_MS_VAR, DEFAULT_TIMEOUT_MS),
        log_level=str(values.get(c.LOG_LEVEL_VAR, "INFO")).upper(),
        cors_origins=_csv(values.get(c.CORS_ORIGINS_VAR, "")),
        workers=_positive_int(values, c.WORKER_COUNT_VAR, 1),
        host=str(values.get(c.HOST_VAR, c.DEFAULT_HOST)),
        port=_positive_int(values, c.PORT_VAR, c.DEFAULT_PORT),
        max_body_bytes=_positive_int(values, c.MAX_BODY_BYTES_VAR, DEFAULT_MAX_BODY_BYTES),
        max_concurrent_requests=(_positive_int(values, c.MAX_CONCURRENT_REQUESTS_VAR, 1)
                                 if values.get(c.MAX_CONCURRENT_REQUESTS_VAR) not in (None, "0") else 0),
        auth_keys=_csv(values.get(c.AUTH_KEYS_VAR, "")),
        run_inline=str(values.get(c.RUN_INLINE_VAR, "")).lower() in ("1", "true", "yes"),
        max_request_line_bytes=_positive_int(values, c.MAX_REQUEST_LINE_BYTES_VAR, DEFAULT_MAX_REQUEST_LINE_BYTES),
        max_header_bytes=_positive_int(values, c.MAX_HEADER_BYTES_VAR, DEFAULT_MAX_HEADER_BYTES),
        header_timeout_ms=_positive_int(values, c.HEADER_TIMEOUT_MS_VAR, DEFAULT_HEADER_TIMEOUT_MS),
        stuck_grace_ms=_positive_int(values, c.STUCK_GRACE_MS_VAR, DEFAULT_STUCK_GRACE_MS),
        scorer_spec=values.get(c.SCORER_VAR) or None,
    )


def _read_config_json(app_root: Path) -> dict[str, str]:
    path = app_root / c.CONFIG_FILENAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: cannot be read as JSON ({exc}); fix or remove the file") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must hold a JSON object of settings such as {{\"SCORING_TIMEOUT_MS\": 5000}}")
    return {str(k): v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)
            for k, v in data.items() if k in c.SETTINGS_VARIABLES and v is not None}


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
