"""init() waits until the test creates AML_APP_ROOT/release, so the 503 phase can be observed."""
import os
import time
from pathlib import Path


def init():
    release = Path(os.environ["AML_APP_ROOT"]) / "release"
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def run(data):
    return "ok"
