"""`python -m pytest_mldeploy.server [--host H] [--port P] [--workers N]`: serve the entry script."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from . import contract as c
from .settings import SettingsError, load_settings


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line over the environment's settings and run the server."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_mldeploy.server",
        description=f"Serve an Azure ML v1 entry script (settings from the environment and {c.APP_ROOT_VAR}/{c.CONFIG_FILENAME}).",
    )
    parser.add_argument("--host", help=f"address to listen on (default: ${c.HOST_VAR} or {c.DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port to listen on (default: ${c.PORT_VAR} or {c.DEFAULT_PORT})")
    parser.add_argument("--workers", type=int, help=f"worker processes (default: ${c.WORKER_COUNT_VAR} or 1)")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    for key, value in ((c.HOST_VAR, args.host), (c.PORT_VAR, args.port), (c.WORKER_COUNT_VAR, args.workers)):
        if value is not None:
            env[key] = str(value)
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        print(f"mldeploy-server: ERROR: {exc}", file=sys.stderr)
        return 2

    from .serve import serve

    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
