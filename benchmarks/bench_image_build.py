"""Image build times for the example project: cold build, warm reuse, score.py-only rebuild.

Runs against the local Docker engine with the offline base image. "Cold" means no image for these
inputs and no build cache for its venv stage (a fresh deployment name and a requirements line no
other build uses), with the wheelhouse already resolved; the wheelhouse resolution is timed apart.
Every image made here is removed at the end. Prints a table and writes `results/image_build.json`
(its `data` holds `cold`, `warm_reuse` and `score_only_rebuild` in seconds, which
bench_pytest_walltime.py reads).

    python benchmarks/bench_image_build.py [--base mldeploy/base:bookworm-py3.11]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from pytest_mldeploy.core.base_image import LOCAL_BASE_TAG, ensure_base_image  # noqa: E402
from pytest_mldeploy.core.config import load_project  # noqa: E402
from pytest_mldeploy.core.environment import ensure_wheelhouse  # noqa: E402
from pytest_mldeploy.core.image import build_image  # noqa: E402
from pytest_mldeploy.core.image_prune import remove_deployment_images  # noqa: E402
from pytest_mldeploy.errors import MldeployError  # noqa: E402

NAME = "image_build"
TITLE = "Service image build for sklearn-diabetes: cold build, warm reuse, score.py-only rebuild"
EXAMPLE = c.EXAMPLE_DIR

TARGET_WARM_REUSE_S = 1.0
TARGET_SCORE_ONLY_REBUILD_S = 10.0

STEP_KEYS = {"wheelhouse (resolve or cache hit)": "wheelhouse", "cold build": "cold",
             "warm reuse": "warm_reuse", "score.py-only rebuild": "score_only_rebuild"}
"""Printed step label -> key in the results' `data` (seconds)."""


def measure(base_tag: str, name: str, rows: list[tuple[str, float, str]], steps: dict[str, Any]) -> str:
    """Build the example under deployment `name` cold, again (reuse), and after a score.py edit.

    Appends (label, seconds, note) to `rows` and per-step details to `steps` as it goes, so a
    failure part-way keeps what was measured. Returns the base image's tag.
    """
    client = docker.from_env(timeout=600)
    base = ensure_base_image(base_tag, client=client, bootstrap=True)
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
            steps["cold"] = cold
            warm = build_image(deployment, project, client=client, base_image=base.tag)
            rows.append(("warm reuse", warm.build_seconds, f"reused={warm.reused}"))
            steps["warm_reuse"] = warm

            score = root / "score.py"
            score.write_text(score.read_text() + "\n# benchmark edit\n")
            project = load_project(root)
            edited = build_image(project.deployments[name], project, client=client, base_image=base.tag)
            rows.append(("score.py-only rebuild", edited.build_seconds, f"reused={edited.reused} {edited.tag}"))
            steps["score_only_rebuild"] = edited
        finally:
            remove_deployment_images(name, client=client)
    return base.tag


def print_table(rows: list[tuple[str, float, str]]) -> None:
    """The plain step / seconds / note table this script has always printed."""
    if not rows:
        return
    width = max(len(row[0]) for row in rows)
    print(f"{'step'.ljust(width)}  seconds  note")
    for label, seconds, note in rows:
        print(f"{label.ljust(width)}  {seconds:7.2f}  {note}")


def ratios_for(seconds: dict[str, float], steps: dict[str, Any]) -> list[dict[str, Any]]:
    """Warm reuse and score.py-only rebuild against their targets; cold build for information."""
    ratios = []
    if "cold" in seconds:
        ratios.append(c.ratio_entry("cold build (s)", seconds["cold"], "(information)", None))
    if "warm_reuse" in seconds:
        reused = steps["warm_reuse"].reused
        ratios.append(c.ratio_entry("warm reuse (s)", seconds["warm_reuse"], f"< {TARGET_WARM_REUSE_S:g} s, no build",
                                    reused and seconds["warm_reuse"] < TARGET_WARM_REUSE_S))
    if "score_only_rebuild" in seconds:
        ratios.append(c.ratio_entry("score.py-only rebuild (s)", seconds["score_only_rebuild"],
                                    f"< {TARGET_SCORE_ONLY_REBUILD_S:g} s",
                                    seconds["score_only_rebuild"] < TARGET_SCORE_ONLY_REBUILD_S))
    if "cold" in seconds and "score_only_rebuild" in seconds:
        ratios.append(c.ratio_entry("score.py-only rebuild / cold build", c.ratio(seconds["score_only_rebuild"], seconds["cold"]),
                                    "(information)", None))
    return ratios


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=LOCAL_BASE_TAG, help="base image tag (default: %(default)s)")
    args = parser.parse_args(argv)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    rows: list[tuple[str, float, str]] = []
    steps: dict[str, Any] = {}
    missing: list[str] = []
    base_tag: Optional[str] = None
    try:
        base_tag = measure(args.base, name, rows, steps)
    except (docker.errors.DockerException, MldeployError) as exc:
        missing.append(f"image build could not be measured after {len(rows)} step(s): {type(exc).__name__}: {exc}"[:1000])
    print_table(rows)
    for line in missing:
        print(f"MISSING: {line}")

    seconds = {STEP_KEYS[label]: round(value, 3) for label, value, _ in rows}
    header = ["step", "seconds", "reused", "image"]
    table = [[label, c.fmt(value, 2), getattr(steps.get(STEP_KEYS[label]), "reused", "-"),
              getattr(steps.get(STEP_KEYS[label]), "tag", "-")] for label, value, _ in rows]
    notes = [f"deployment name {name} and an extra requirement line (threadpoolctl>=1) keep the cold build out of "
             "the image and build caches; the wheelhouse is resolved first and timed apart",
             "warm reuse = build_image() again with the same inputs (the content-hash tag exists, Docker's build is "
             "not called); score.py-only rebuild = build_image() after appending a comment to score.py",
             "every image built here was removed afterwards (remove_deployment_images)"]
    data = {**seconds, "base_image": base_tag or args.base, "deployment": name,
            "steps": {key: step for key, step in steps.items()}}
    path = c.write_results(NAME, title=TITLE, header=header, rows=table, ratios=ratios_for(seconds, steps),
                           missing=missing, notes=notes, data=data)
    print(f"\nwrote {path.relative_to(c.REPO_ROOT)}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
