"""The one `CheckRunner` per project of a pytest process, kept in the pytest config's stash.

The check items and the fixtures share it, so a deployment is deployed once per run whether its
checks or a hand-written test asks first; `plugin.py` closes them at the end.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest

if TYPE_CHECKING:
    from pytest_mldeploy.check_run import CheckRunner

RUNNERS = pytest.StashKey[dict]()


def option(config: pytest.Config, name: str) -> Any:
    """`--mldeploy-NAME`, else the `mldeploy_NAME` ini value, else None."""
    value = config.getoption(f"mldeploy_{name}")
    if value in (None, ""):
        value = config.getini(f"mldeploy_{name}") or None
    return value


def runner_for(config: pytest.Config, config_path: Optional[Path] = None) -> "CheckRunner":
    """The one CheckRunner of this pytest process for a project.

    The project is `config_path`, else --mldeploy-config, else the `mldeploy.yaml` nearest above
    the paths given on the command line, else above the rootdir.
    """
    from pytest_mldeploy.core.config import load_project
    from pytest_mldeploy.check_run import CheckRunner

    if config_path is None:
        explicit = option(config, "config")
        config_path = Path(explicit) if explicit else nearest_config(config)
    runners = config.stash[RUNNERS]
    key = str(Path(config_path).resolve())
    if key not in runners:
        report = option(config, "report")
        runners[key] = CheckRunner(
            load_project(config_path),
            target=option(config, "target") or "auto",
            keep=config.getoption("mldeploy_keep"),
            examples=int(option(config, "examples") or 50),
            report_dir=Path(report).resolve() if report else None,
            seed=config.getoption("mldeploy_seed"),
            notice=notice(config),
        )
    return runners[key]


def notice(config: pytest.Config) -> Callable[[str], None]:
    """Write a line to the terminal even while a test's output is being captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return print

    def say(line: str) -> None:
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return say


def nearest_config(config: pytest.Config) -> Path:
    """The `mldeploy.yaml` nearest above the first path run that has one (the rootdir last)."""
    from pytest_mldeploy.core.config import find_config
    from pytest_mldeploy.errors import ConfigError

    starts = [Path(arg.split("::")[0]).resolve() for arg in config.args] + [config.rootpath]
    error: Optional[ConfigError] = None
    for start in starts:
        try:
            return find_config(start if start.is_dir() else start.parent)
        except ConfigError as exc:
            error = error or exc
    assert error is not None
    raise error
