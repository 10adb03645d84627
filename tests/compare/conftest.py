"""Module-scoped projects for the compare tests (built by compare_projects.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from compare_projects import diabetes_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speed judged: the unchanged and the slow candidate."""
    return diabetes_project(tmp_path_factory.mktemp("diabetes"), ["same", "slow"])


@pytest.fixture(scope="module")
def quick_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speed not measured (compare.speed.enabled: false): the candidates planted with other faults."""
    return diabetes_project(tmp_path_factory.mktemp("diabetes-quick"), ["scaled", "renamed", "constant"], speed=False)
