"""`source_tree.walk_source`: the one walk of a source directory, for the app layout and the config's symlink check."""
from __future__ import annotations

from pathlib import Path

from pytest_mldeploy.core.source_tree import walk_source


def test_the_walk_applies_ignore_rules_skips_folders_and_dangling_links_and_follows_links_once(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "util.py").write_text("x = 1\n")
    (source / "score.py").write_text("def run(data): return data\n")
    (source / "notes.tmp").write_text("scratch\n")
    (source / "keep.tmp").write_text("kept by a negated rule\n")
    (source / ".amlignore").write_text("*.tmp\n!keep.tmp\nbuild/\n")
    (source / "build").mkdir()
    (source / "build" / "out.bin").write_text("ignored folder\n")
    (source / ".venv" / "bin").mkdir(parents=True)
    (source / ".venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    (source / "registry").mkdir()
    (source / "registry" / "index.json").write_text("{}\n")
    (source / "gone").symlink_to(source / "missing.py")
    (source / "pkg" / "loop").symlink_to(source / "pkg")

    entries = list(walk_source(source, skip_dirs=[source / "registry"]))

    assert [e.rel for e in entries] == [".amlignore", "keep.tmp", "pkg", "score.py", "pkg/loop", "pkg/util.py"]
    assert [e.rel for e in entries if e.is_dir] == ["pkg", "pkg/loop"]
    assert all(e.path == source / e.rel for e in entries)
