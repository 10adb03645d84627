"""No schema decorators: run() gets the raw body as a string. Commands in the body drive the tests."""
import json
import os
import time
from pathlib import Path

import numpy as np


def init():
    global calls
    calls = 0


def run(data, request_headers=None):
    global calls
    calls += 1
    app_root = Path(os.environ["AML_APP_ROOT"])
    if data == "nan":
        return [1.0, float("nan")]
    if data == "numpy-float":
        return np.float64(2.5)
    if data == "numpy-array":
        return {"values": np.array([1.0, 2.0])}
    if data == "raise":
        raise ValueError("run() was told to fail")
    if data == "hold":
        # Runs until the test creates `release`; marks that it started, and whether it finished.
        (app_root / "started").write_text("1")
        deadline = time.monotonic() + 30
        while not (app_root / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        (app_root / "finished").write_text("1")
        return "released"
    if data == "spin":
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.01)
        (app_root / "spun-out").write_text("1")
        return "spun"
    return {"received": data, "type": type(data).__name__, "calls": calls,
            "trace": (request_headers or {}).get("X-Test-Trace"), "cwd": os.getcwd()}
