"""The process target says what the user should know about a deployment's environment before it starts."""
from __future__ import annotations

import sys
from pathlib import Path

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.targets.process import ProcessTarget


def test_process_target_names_left_out_conda_packages_and_another_python(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    (tmp_path / "conda.yml").write_text("dependencies:\n  - python=3.6.2\n  - mkl\n  - pip:\n    - joblib\n")
    (tmp_path / "mldeploy.yaml").write_text("deployments:\n  old:\n    entry_script: score.py\n    environment: {conda_file: conda.yml}\n")
    deployment = load_project(tmp_path).deployments["old"]
    said: list[str] = []
    ProcessTarget(notice=said.append)._say(deployment)
    here = "%d.%d" % sys.version_info[:2]
    assert said == [
        "mldeploy: conda.yml: conda package(s) not installed, no PyPI equivalent: mkl (not a Python package) "
        "(the image installs wheels from PyPI); if the service needs one, list its pip name under `pip:`",
        f"mldeploy: deployment old: conda.yml (python=3.6.2) asks for Python 3.6; the process target runs Python {here} ({sys.executable})",
    ]
    quiet: list[str] = []
    (tmp_path / "conda.yml").write_text(f"dependencies:\n  - python={here}\n  - pip:\n    - joblib\n")
    ProcessTarget(notice=quiet.append)._say(load_project(tmp_path).deployments["old"])
    assert quiet == []
