"""The server stands alone: it loads nothing of the core (nor pydantic), and the copy that goes into
a venv or an image (`core.server_copy`) is only the server package and a stub package `__init__`."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest_mldeploy
from pytest_mldeploy.core import server_copy
from pytest_mldeploy.server import contract

REPO = Path(__file__).resolve().parents[2]
# Loaded by the server, these would mean it needs what an image does not have.
FORBIDDEN = ("pytest_mldeploy.core", "pytest_mldeploy.checks", "pytest_mldeploy.plugin", "pytest_mldeploy.cli",
             "pydantic")

# init() writes the names of the loaded modules where the test can read them.
DUMP_MODULES = '''\
import json, os, sys

def init():
    with open(os.path.join(os.environ["AML_APP_ROOT"], "modules.json"), "w") as out:
        json.dump({"modules": sorted(sys.modules), "package": sys.modules["pytest_mldeploy"].__file__}, out)

def run(data):
    return {"echo": data}
'''


def _forbidden(modules: list[str]) -> list[str]:
    return [name for name in modules if any(name == prefix or name.startswith(prefix + ".") for prefix in FORBIDDEN)]


def test_importing_every_server_module_loads_neither_core_nor_pydantic() -> None:
    code = ("import importlib, json, pkgutil, sys, pytest_mldeploy.server as s\n"
            "for m in pkgutil.walk_packages(s.__path__, s.__name__ + '.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    modules = json.loads(out.stdout)
    assert "pytest_mldeploy.server.app" in modules and "pytest_mldeploy.server.__main__" in modules
    assert _forbidden(modules) == []


def test_the_running_server_loads_neither_core_nor_pydantic(tmp_path: Path, start_server, module_app) -> None:
    script = tmp_path / "dump_modules.py"
    script.write_text(DUMP_MODULES)
    app = module_app(script)
    start_server(app)
    modules = json.loads((app.root / "modules.json").read_text())["modules"]
    assert "pytest_mldeploy.server.serve" in modules
    assert _forbidden(modules) == []


def test_the_copy_is_the_server_package_and_a_stub_that_holds_only_the_version(tmp_path: Path) -> None:
    server_copy.copy_server(tmp_path)
    copied = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    package = Path(pytest_mldeploy.__file__).parent
    expected = sorted(["pytest_mldeploy/__init__.py", "pytest_mldeploy/_version.py"] + [
        "pytest_mldeploy/" + p.relative_to(package).as_posix() for p in (package / "server").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")])
    assert copied == expected
    stub = ast.parse((tmp_path / "pytest_mldeploy" / "__init__.py").read_text())
    docstring, version_import = stub.body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    assert isinstance(version_import, ast.ImportFrom) and version_import.module == "pytest_mldeploy._version"
    assert [alias.name for alias in version_import.names] == ["__version__"]
    copied_version = ast.parse((tmp_path / "pytest_mldeploy" / "_version.py").read_text()).body[-1]
    assert isinstance(copied_version, ast.Assign) and ast.literal_eval(copied_version.value) == pytest_mldeploy.__version__


def test_the_copy_alone_serves(tmp_path: Path, start_server, module_app) -> None:
    # What a venv or an image runs: the copy first on the path, then the installed packages (uvicorn,
    # the script's), and no .pth files (-S), so this checkout's editable install cannot fill a gap.
    copy = tmp_path / "copy"
    server_copy.copy_server(copy)
    script = tmp_path / "dump_modules.py"
    script.write_text(DUMP_MODULES)
    app = module_app(script)
    server = start_server(app, python_path=[copy, Path(sysconfig.get_paths()["purelib"])], python_options=("-S",))
    response = server.post(contract.SCORE_ROUTE, json={"x": 1})
    assert response.status_code == 200, server.log()
    assert response.headers["x-ms-server-version"] == f"pytest-mldeploy/{pytest_mldeploy.__version__}"
    dumped = json.loads((app.root / "modules.json").read_text())
    assert Path(dumped["package"]).parent == copy / "pytest_mldeploy"
    assert _forbidden(dumped["modules"]) == []
