"""The names mldeploy accepts for deployments and models: each becomes a container name and a folder."""
from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(value: str, what: str) -> str:
    """Refuse names that cannot be a container name or a folder: `[A-Za-z0-9][A-Za-z0-9._-]*`."""
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return value
