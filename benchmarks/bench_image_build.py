"""Image build times for the example project: cold build, warm reuse, score.py-only rebuild.

Runs against the local Docker engine with the offline base image. "Cold" means no image for these
inputs and no build cache for its venv stage (a fresh deployment name and a requirements line no
other build uses), with the wheelhouse already resolved; the wheelhouse resolution is timed apart.
Every image made here is removed at the end.

    python benchmarks/bench_image_build.py [--base mldeploy/base:bookworm-py3.11]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import docker

from pytest_mldeploy.core.base_image import LOCAL_BASE_TAG, ensure_base_image
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.environment import ensure_wheelhouse
from pytest_mldeploy.core.image import build_image, remove_deployment_images

EXAMPLE = Path(__file__).resolve().parents[1] / "example_projects" / "sklearn-diabetes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=LOCAL_BASE_TAG, help="base image tag (default: %(default)s)")
    args = parser.parse_args()
    client = docker.from_env(timeout=600)
    base = ensure_base_image(args.base, client=client, bootstrap=True)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="mldeploy-bench-") as tmp:
        root = Path(tmp) / "proj"
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mldeploy*", "__pycache__"))
        config = root / "mldeploy.yaml"
        # An extra requirement line no other build has keeps the venv stage out of the build cache.
        text = config.read_text().replace("  diabetes:", f"  {name}:")
        config.write_text(text.replace("pip: [", "pip: [threadpoolctl>=1, "))
        try:
            project = load_project(root)
            deployment = project.deployments[name]
            started = time.monotonic()
            ensure_wheelhouse(deployment.environment.requirements(), base.python_version, base.manylinux_platforms)
            rows.append(("wheelhouse (resolve or cache hit)", time.monotonic() - started, ""))

            cold = build_image(deployment, project, client=client, base_image=base.tag)
            rows.append(("cold build", cold.build_seconds, f"reused={cold.reused} {cold.tag}"))
            warm = build_image(deployment, project, client=client, base_image=base.tag)
            rows.append(("warm reuse", warm.build_seconds, f"reused={warm.reused}"))

            score = root / "score.py"
            score.write_text(score.read_text() + "\n# benchmark edit\n")
            project = load_project(root)
            edited = build_image(project.deployments[name], project, client=client, base_image=base.tag)
            rows.append(("score.py-only rebuild", edited.build_seconds, f"reused={edited.reused} {edited.tag}"))
        finally:
            remove_deployment_images(name, client=client)
    width = max(len(row[0]) for row in rows)
    print(f"{'step'.ljust(width)}  seconds  note")
    for label, seconds, note in rows:
        print(f"{label.ljust(width)}  {seconds:7.2f}  {note}")


if __name__ == "__main__":
    main()
