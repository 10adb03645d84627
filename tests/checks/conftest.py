"""Live services for the check tests: each project deployed once per test module with the process target."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from pytest_mldeploy.checks.base import CheckContext

#: Hypothesis examples per properties run: enough to find the broken scripts' bugs, quick on 2 cores.
EXAMPLES = 30


@pytest.fixture(scope="module")
def live_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., CheckContext]]:
    """`live_context(project_dir)` deploys the project's only deployment once per module and returns a fresh CheckContext."""
    from pytest_mldeploy.client import ScoringClient
    from pytest_mldeploy.core.config import load_project
    from pytest_mldeploy.core.registry import Registry
    from pytest_mldeploy.core.targets import get_target

    registry = Registry(tmp_path_factory.mktemp("registry"))
    target = get_target("process")
    started: dict[Path, tuple] = {}

    def context(project_dir: Path, fresh: bool = False, **overrides) -> CheckContext:
        if fresh or project_dir not in started:
            project = load_project(project_dir / "mldeploy.yaml")
            (deployment,) = project.deployments.values()
            service = target.deploy(deployment, project, registry=registry)
            if project_dir in started:
                started[project_dir][2].delete()
            started[project_dir] = (project, deployment, service)
        project, deployment, service = started[project_dir]
        fields = dict(project=project, deployment=deployment, service=service, client=ScoringClient.from_service(service),
                      target=target, examples=EXAMPLES, report_dir=tmp_path_factory.mktemp("report"))
        fields.update(overrides)
        return CheckContext(**fields)

    yield context
    for _, _, service in started.values():
        service.delete()
