"""Told "sleep-forever", run() blocks in time.sleep: C code that never sees the scoring timeout's interruption.

It first writes `stuck-once` in the app root; an init() that finds that file (the replacement worker's)
waits for `release-init`, so a test can watch the service's 503 while the worker is being replaced.
"""
import os
import time
from pathlib import Path


def init():
    root = Path(os.environ["AML_APP_ROOT"])
    if (root / "stuck-once").exists():
        (root / "restarted").write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not (root / "release-init").exists() and time.monotonic() < deadline:
            time.sleep(0.02)


def run(data):
    if data == "sleep-forever":
        (Path(os.environ["AML_APP_ROOT"]) / "stuck-once").write_text("1")
        time.sleep(100000)
    return {"pid": os.getpid(), "received": data}
