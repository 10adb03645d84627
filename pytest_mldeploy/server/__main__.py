"""`python -m pytest_mldeploy.server [--host H] [--port P] [--workers N]`: serve the entry script."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from .settings import SettingsError, load_settings


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line over the environment's settings and run the server."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_mldeploy.server",
        description="Serve an Azure ML v1 entry script (settings from the environment and AML_APP_ROOT/config.json).",
    )
    parser.add_argument("--host", help="address to listen on (default: $MLDEPLOY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: $MLDEPLOY_PORT or 5001)")
    parser.add_argument("--workers", type=int, help="worker processes (default: $WORKER_COUNT or 1)")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    for key, value in (("MLDEPLOY_HOST", args.host), ("MLDEPLOY_PORT", args.port), ("WORKER_COUNT", args.workers)):
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
