"""Hostile mldeploy.yaml files, run through the real `mldeploy` command (issue #9, holes 4, 6 and 10).

Each case must stop with `mldeploy: error: ...`, one line per problem, no traceback, exit 2, and
must register, copy or read nothing from outside the project: the registry holds no object and the
build context is not written.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Tuple

import pytest

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
HEAD = "deployments:\n  diabetes:\n    entry_script: score.py\n"


def _symlinked_model(project: Path) -> str:
    (project / "models" / "m.pkl").symlink_to("/etc/shadow")
    return HEAD + "    models: [{path: models/m.pkl}]\n"


def _symlink_in_model_folder(project: Path) -> str:
    folder = project / "models" / "bundle"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w")
    (folder / "passwd").symlink_to("/etc/passwd")
    return HEAD + "    models: [{path: models/bundle}]\n"


def _symlinked_source(project: Path) -> str:
    (project / "src").symlink_to("/etc")
    return HEAD.replace("score.py", "hostname") + "    source_directory: src\n"


def _symlink_in_source(project: Path) -> str:
    (project / "aws-credentials").symlink_to("/etc/hostname")
    return HEAD


# name -> (writes the project's files and returns mldeploy.yaml, bytes or text; what the one error line says)
CASES: Dict[str, Tuple[Callable[[Path], object], str]] = {
    "absolute model path": (lambda p: HEAD + "    models: [{path: /etc/passwd}]\n", "/etc/passwd is outside the project"),
    "dot-dot model path": (lambda p: HEAD + "    models: [{path: ../../../../../../etc/passwd}]\n",
                           "../../../../../../etc/passwd is outside the project"),
    "model symlink to /etc/shadow": (_symlinked_model, "models/m.pkl is outside the project (it leads to /etc/shadow)"),
    "symlink inside a model folder": (_symlink_in_model_folder, "models/bundle: passwd is a symlink to /etc/passwd"),
    "source_directory /": (lambda p: HEAD + "    source_directory: /\n", "source_directory: / is outside the project"),
    "source_directory symlink to /etc": (_symlinked_source, "source_directory: src is outside the project (it leads to /etc)"),
    "symlink inside source_directory": (_symlink_in_source, "aws-credentials in "),
    "requirements outside": (lambda p: HEAD + "    environment: {requirements: /etc/hostname}\n",
                             "environment.requirements: /etc/hostname is outside the project"),
    "profile requests outside": (lambda p: HEAD + "    profile: {requests: /etc/hostname}\n",
                                 "profile.requests: /etc/hostname is outside the project"),
    "invalid UTF-8": (lambda p: (HEAD + "    description: caf\xe9\n").encode("latin-1"), "not valid UTF-8 (byte 0xe9)"),
    "UTF-16 file": (lambda p: HEAD.encode("utf-16"), "line 1, column 1: not valid UTF-8 (byte 0xff)"),
    "health_timeout_s .inf": (lambda p: HEAD + "    health_timeout_s: .inf\n", "health_timeout_s: expected a finite number, got inf"),
    "profile duration_s .inf": (lambda p: HEAD + "    profile: {duration_s: .inf}\n", "duration_s: expected a finite number, got inf"),
}


def _mldeploy(project: Path, *args: str) -> subprocess.CompletedProcess:
    """`mldeploy ARGS` in its own interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "pytest_mldeploy.cli", *args], cwd=project, capture_output=True,
                          text=True, timeout=120)


def _mldeploy_here(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess:
    """`mldeploy ARGS` through `cli.main` in this process (the same code path, without interpreter start-up)."""
    from pytest_mldeploy.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_config_registers_and_copies_nothing(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__", "mldeploy-report"))
    monkeypatch.chdir(project)
    write, expected = CASES[case]
    body = write(project)
    config = project / "mldeploy.yaml"
    config.write_bytes(body if isinstance(body, bytes) else str(body).encode())
    context = tmp_path / "context"
    for run, args in ((_mldeploy, ("models", "register", "--config", str(config))),
                      (_mldeploy_here, ("package", "diabetes", "--dockerfile-only", str(context), "--config", str(config)))):
        result = run(project, *args) if run is _mldeploy else run(capsys, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.splitlines()
        # one line per problem: a symlink inside the project is the model's and source_directory's problem
        assert lines[0].startswith("mldeploy: error: mldeploy.yaml: ") and len(lines) <= 2, result.stderr
        assert all(line.startswith("mldeploy.yaml: ") for line in lines[1:]), result.stderr
        assert expected in lines[0], lines[0]
        assert "Traceback" not in result.stderr
    assert not (project / ".mldeploy" / "objects").exists() or not any((project / ".mldeploy" / "objects").iterdir())
    assert not context.exists()


def test_models_list_with_an_escaping_name_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__", "mldeploy-report"))
    for args in (("models", "list", "--name", "../x", "--config", str(project)),
                 ("models", "download", "../../etc/passwd", "1", "--config", str(project)),
                 ("models", "delete", "/abs", "--config", str(project))):
        result = _mldeploy(project, *args)
        assert result.returncode == 2 and "is refused" in result.stderr, (args, result.stderr)
        assert "no models registered" not in result.stdout
