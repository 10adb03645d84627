"""The registry of built-in checks: names, order, and a cheap import for plugins."""
from __future__ import annotations

import subprocess
import sys


def test_builtin_checks_in_order():
    from pytest_mldeploy.checks import BUILTIN_CHECKS

    assert list(BUILTIN_CHECKS) == ["health", "swagger", "properties", "robustness", "samples"]
    assert all(callable(check) and check.__doc__ for check in BUILTIN_CHECKS.values())


def test_importing_the_result_types_does_not_import_hypothesis():
    code = "import sys, pytest_mldeploy.checks.base; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
