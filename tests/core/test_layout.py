"""The Azure ML app layout: model folders, the filtered source copy and the server's environment."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

import pytest

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.layout import AppLayout, lay_out_app
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.errors import BuildError


def make_project(root: Path, deployment_body: str) -> Path:
    """A project whose source directory is `root/svc`, with two model files and a model folder."""
    src = root / "svc"
    (src / "lib").mkdir(parents=True)
    (src / "score.py").write_text("def init(): pass\ndef run(data): return data\n")
    (src / "lib" / "helpers.py").write_text("X = 1\n")
    (root / "models" / "enc").mkdir(parents=True)
    (root / "models" / "a.pkl").write_bytes(b"AAA")
    (root / "models" / "b.pkl").write_bytes(b"BBB")
    (root / "models" / "enc" / "vocab.txt").write_text("v")
    (root / "mldeploy.yaml").write_text(
        f"deployments:\n  svc:\n    source_directory: svc\n    entry_script: score.py\n{deployment_body}"
    )
    return root / "mldeploy.yaml"


def tree(root: Path) -> List[str]:
    return sorted(p.relative_to(root).as_posix() + ("/" if p.is_dir() else "") for p in root.rglob("*"))


def lay_out(config: Path, app: Path) -> AppLayout:
    deployment = load_project(config).deployments["svc"]
    registry = Registry(load_project(config).registry_dir)
    return lay_out_app(deployment, registry.register_deployment_models(deployment), registry, app)


def test_one_model(tmp_path: Path) -> None:
    config = make_project(tmp_path, "    models: [{path: models/a.pkl}]\n    cors_origins: [https://x.example]\n")
    layout = lay_out(config, tmp_path / "app")
    assert tree(tmp_path / "app") == [
        "azureml-models/", "azureml-models/a/", "azureml-models/a/1/", "azureml-models/a/1/a.pkl",
        "svc/", "svc/lib/", "svc/lib/helpers.py", "svc/score.py",
    ]
    model = tmp_path / "app" / "azureml-models" / "a" / "1" / "a.pkl"
    assert model.read_bytes() == b"AAA"
    assert os.stat(model).st_nlink == 2  # hard-linked from the store, not copied
    assert layout.model_dir == tmp_path / "app" / "azureml-models" / "a" / "1"
    assert layout.entry_script == tmp_path / "app" / "svc" / "score.py"
    assert layout.server_env() == {
        "AML_APP_ROOT": str(tmp_path / "app"),
        "AZUREML_SOURCE_DIRECTORY": "svc",
        "AZUREML_ENTRY_SCRIPT": "score.py",
        "AZUREML_MODEL_DIR": str(tmp_path / "app" / "azureml-models" / "a" / "1"),
        "SERVICE_NAME": "svc",
        "SCORING_TIMEOUT_MS": "60000",
        "CORS_ORIGINS": "https://x.example",
        "WORKER_COUNT": "1",
        "MLDEPLOY_MAX_BODY_BYTES": "10485760",
    }


def test_several_models_and_a_folder(tmp_path: Path) -> None:
    config = make_project(
        tmp_path,
        "    models:\n      - {path: models/a.pkl}\n      - {name: bee, path: models/b.pkl, version: 4}\n"
        "      - {path: models/enc}\n",
    )
    layout = lay_out(config, tmp_path / "app")
    models = tmp_path / "app" / "azureml-models"
    assert [p for p in tree(models)] == [
        "a/", "a/1/", "a/1/a.pkl", "bee/", "bee/4/", "bee/4/b.pkl", "enc/", "enc/1/", "enc/1/enc/", "enc/1/enc/vocab.txt",
    ]
    assert layout.model_dir == models
    assert layout.server_env()["AZUREML_MODEL_DIR"] == str(models)
    assert [m.id for m in layout.models] == ["a:1", "bee:4", "enc:1"]


def test_no_models(tmp_path: Path) -> None:
    layout = lay_out(make_project(tmp_path, ""), tmp_path / "app")
    assert layout.model_dir == tmp_path / "app" / "azureml-models" and layout.model_dir.is_dir()


def test_ignore_rules_amlignore_over_gitignore(tmp_path: Path) -> None:
    config = make_project(tmp_path, "")
    src = tmp_path / "svc"
    for rel in ["data/big.csv", "data/keep.csv", "notes.md", "__pycache__/x.pyc", "lib/y.pyc", ".git/HEAD",
                ".mldeploy/index.json", ".mldeploy-cache/x", "build/out.bin", "sub/build/z",
                ".pytest_cache/v/cache/nodeids", ".hypothesis/examples/x", "mldeploy-report/diabetes/profile.json"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    (src / ".gitignore").write_text("notes.md\n")
    (src / ".amlignore").write_text("# large data\ndata/*.csv\n!data/keep.csv\n/build/\n")
    lay_out(config, tmp_path / "app")
    assert tree(tmp_path / "app" / "svc") == [
        ".amlignore", ".gitignore", "data/", "data/keep.csv", "lib/", "lib/helpers.py", "notes.md", "score.py",
        "sub/", "sub/build/", "sub/build/z",
    ]
    (src / ".amlignore").unlink()
    lay_out(config, tmp_path / "app2")
    copied = tree(tmp_path / "app2" / "svc")
    assert "notes.md" not in copied and "data/big.csv" in copied and "build/out.bin" in copied


def test_registry_and_app_root_inside_the_source_are_skipped(tmp_path: Path) -> None:
    config = make_project(tmp_path, "    models: [{path: models/a.pkl}]\n")
    config.write_text("registry: svc/store\n" + config.read_text())
    layout = lay_out(config, tmp_path / "svc" / "out" / "app")
    assert tree(layout.source_dir) == ["lib/", "lib/helpers.py", "out/", "score.py"]


def test_ignored_entry_script_and_non_empty_root_are_errors(tmp_path: Path) -> None:
    config = make_project(tmp_path, "")
    (tmp_path / "svc" / ".amlignore").write_text("*.py\n")
    with pytest.raises(BuildError, match="entry_script score.py was not copied"):
        lay_out(config, tmp_path / "app")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(BuildError, match="is not empty"):
        lay_out(config, tmp_path / "busy")


def test_server_env_with_auth_variables_and_relocation(tmp_path: Path) -> None:
    config = make_project(
        tmp_path,
        "    models: [{path: models/a.pkl}]\n    entry_script: lib/helpers.py\n    auth: {enabled: true, keys: [k1, k2]}\n"
        "    environment: {variables: {MODE: fast}}\n    workers: 3\n    scoring_timeout_ms: 5000\n    max_body_bytes: 1024\n",
    )
    config.write_text(config.read_text().replace("    entry_script: score.py\n", "", 1))
    layout = lay_out(config, tmp_path / "app")
    env = layout.server_env()
    assert env["AZUREML_ENTRY_SCRIPT"] == "lib/helpers.py"
    assert env["MLDEPLOY_AUTH_KEYS"] == "k1,k2"
    assert (env["MODE"], env["WORKER_COUNT"], env["SCORING_TIMEOUT_MS"], env["MLDEPLOY_MAX_BODY_BYTES"]) == ("fast", "3", "5000", "1024")
    moved = layout.relocated("/var/azureml-app")
    assert moved["AML_APP_ROOT"] == "/var/azureml-app"
    assert moved["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models/a/1"
    assert {k: v for k, v in moved.items() if k not in ("AML_APP_ROOT", "AZUREML_MODEL_DIR")} == {
        k: v for k, v in env.items() if k not in ("AML_APP_ROOT", "AZUREML_MODEL_DIR")
    }


def test_layout_is_deterministic(tmp_path: Path) -> None:
    config = make_project(tmp_path, "    models: [{path: models/enc}, {path: models/b.pkl}]\n")
    lay_out(config, tmp_path / "one")
    lay_out(config, tmp_path / "two")
    one, two = tree(tmp_path / "one"), tree(tmp_path / "two")
    assert one == two
    for rel in one:
        if not rel.endswith("/"):
            assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()
            assert os.stat(tmp_path / "one" / rel).st_mode == os.stat(tmp_path / "two" / rel).st_mode
