"""What BASELINE and CANDIDATE of `mldeploy compare` name, resolved into a project and a deployment each.

A side is written as one of
- `NAME`: a deployment of the project (`mldeploy.yaml`, from `--config` or found upward);
- `NAME` of an Azure ML v2 deployment file beside the config (or in the working directory), or
  beside a v2 file a deployment of the project names with `online_deployment`: the way Azure's
  safe-rollout sample keeps `blue-deployment.yml` and `green-deployment.yml` side by side; a path
  to such a file works too;
- `git:REV` (or `git:REV:NAME`): the project as it is at git revision REV, checked out into a
  temporary `git worktree` that is removed afterwards; the deployment of the other side's name
  unless NAME is given;
- `image:TAG` (or a tag or id Docker knows with an `mldeploy.deployment` label): a service image
  built earlier, run with the settings of the deployment its label names (Docker target only).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from pytest_mldeploy.core import azure_v2
from pytest_mldeploy.core.config import Deployment, Project, find_config, load_project
from pytest_mldeploy.errors import ConfigError

GIT_PREFIX = "git:"
IMAGE_PREFIX = "image:"
DEPLOYMENT_LABEL = "mldeploy.deployment"


@dataclass
class Side:
    """One side of a comparison: where its deployment comes from and what runs."""

    role: str  # "baseline" or "candidate"
    spec: str
    kind: str  # "deployment", "v2", "git" or "image"
    project: Project
    deployment: Deployment
    #: An image side: the image to run instead of building the deployment's.
    image: Optional[str] = None
    #: A git side: the commit REV resolved to.
    revision: Optional[str] = None

    def describe(self) -> str:
        """One line: `baseline git:main (diabetes at 1a2b3c4d)`."""
        extra = {"git": f" at {(self.revision or '')[:10]}", "image": f" image {self.image}"}.get(self.kind, "")
        shown = self.deployment.name if self.spec == self.deployment.name else f"{self.spec} ({self.deployment.name}{extra})"
        return f"{self.role} {shown}"

    def to_dict(self) -> dict:
        return {
            "spec": self.spec, "kind": self.kind, "deployment": self.deployment.name,
            "config": str(self.project.config_path), "revision": self.revision, "image": self.image,
        }  # fmt: skip


def home_project(config: Optional[Path]) -> Optional[Project]:
    """The project named by `--config`, else the `mldeploy.yaml` found upward, else None (a folder of v2 files)."""
    if config is not None:
        return load_project(config)
    try:
        found = find_config()
    except ConfigError:
        return None
    return load_project(found)


def resolve_sides(baseline: str, candidate: str, *, config: Optional[Path], stack: ExitStack,
                  progress: Callable[[str], None] = lambda _m: None) -> tuple[Side, Side]:
    """Both sides; a `git:` side takes the other side's deployment name, so it is resolved last.

    Temporary worktrees are removed when `stack` closes.
    """
    project = home_project(config)
    folder = Path(config).resolve().parent if config is not None and Path(config).is_file() else (
        project.config_path.parent if project is not None else Path.cwd())
    direct = {role: _resolve_direct(role, spec, project, folder)
              for role, spec in (("baseline", baseline), ("candidate", candidate)) if not spec.startswith(GIT_PREFIX)}
    sides: dict[str, Side] = {}
    for role, spec in (("baseline", baseline), ("candidate", candidate)):
        if role in direct:
            sides[role] = direct[role]
            continue
        other = next(iter(direct.values()), None)
        sides[role] = _resolve_git(role, spec, project, other, stack, progress)
    return sides["baseline"], sides["candidate"]


def _resolve_direct(role: str, spec: str, project: Optional[Project], folder: Path) -> Side:
    if spec.startswith(IMAGE_PREFIX):
        return _resolve_image(role, spec, spec[len(IMAGE_PREFIX):], project, folder)
    if project is not None and spec in project.deployments:
        return Side(role, spec, "deployment", project, project.deployments[spec])
    path = Path(spec)
    if path.suffix.lower() in (".yml", ".yaml") and path.is_file():
        loaded = load_project(path)
        return Side(role, spec, "v2", loaded, next(iter(loaded.deployments.values())))
    found = None
    for place in _v2_folders(project, folder):
        found = found or find_v2_deployment(spec, place)
    if found is not None:
        loaded = load_project(found)
        return Side(role, spec, "v2", loaded, next(iter(loaded.deployments.values())))
    labelled = _image_deployment(spec)
    if labelled is not None:
        return _resolve_image(role, spec, spec, project, folder)
    known = sorted(project.deployments) if project is not None else []
    v2 = sorted(str(name) for name in v2_deployment_names(folder))
    raise ConfigError(
        f"{role} {spec!r}: not a deployment of {project.config_path if project else 'a project (no mldeploy.yaml found)'}"
        f"{' (' + ', '.join(known) + ')' if known else ''}, nor an Azure ML v2 deployment in {folder}"
        f"{' (' + ', '.join(v2) + ')' if v2 else ''}, nor an image Docker knows; "
        f"write a deployment name, a v2 deployment name or file, git:REV, or image:TAG"
    )


def _v2_folders(project: Optional[Project], folder: Path) -> list[Path]:
    """Where v2 deployments of the same endpoint live: `folder`, and the folders of the v2 files the
    project's deployments name with `online_deployment` (blue's file names green's neighbour)."""
    folders = [folder]
    for deployment in (project.deployments.values() if project is not None else ()):
        if deployment.online_deployment is not None and Path(deployment.online_deployment).parent not in folders:
            folders.append(Path(deployment.online_deployment).parent)
    return folders


def _v2_files(folder: Path) -> list[tuple[Path, str]]:
    """(file, deployment name) of the Azure ML v2 deployment files directly in `folder`."""
    out = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if azure_v2.is_deployment_file(path):
            data = azure_v2.read_yaml(path, path.name)
            out.append((path, str(data.get("name") or path.stem)))
    return out


def v2_deployment_names(folder: Path) -> list[str]:
    """The `name`s of the v2 deployment files in `folder`."""
    return [name for _path, name in _v2_files(folder)]


def find_v2_deployment(name: str, folder: Path) -> Optional[Path]:
    """The v2 deployment file in `folder` whose `name` (or mldeploy key) is `name`; an error when several are."""
    matches = [path for path, own in _v2_files(folder) if name in (own, azure_v2.deployment_key(path, own))]
    if len(matches) > 1:
        raise ConfigError(f"{name!r}: {len(matches)} v2 deployment files in {folder} are named so "
                          f"({', '.join(p.name for p in matches)}); give the file's path instead")
    return matches[0] if matches else None


def _image_deployment(ref: str) -> Optional[str]:
    """The `mldeploy.deployment` label of a local image, None when Docker has no such image (or no Docker answers)."""
    try:
        from pytest_mldeploy.core.docker_client import docker_client

        client = docker_client(10)
    except Exception:  # noqa: BLE001 - no docker package or engine: not an image side
        return None
    try:
        image = client.images.get(ref)
    except Exception:  # noqa: BLE001 - unknown image or engine down: not an image side
        return None
    finally:
        client.close()
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    return labels.get(DEPLOYMENT_LABEL) or ""


def _docker_answers() -> bool:
    """Whether a Docker engine answers a ping (an image side cannot be found, nor run, without one)."""
    try:
        import docker

        client = docker.from_env(timeout=10)
    except Exception:  # noqa: BLE001 - no docker package or no engine configured
        return False
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - engine down
        return False
    finally:
        client.close()


def _resolve_image(role: str, spec: str, ref: str, project: Optional[Project], folder: Path) -> Side:
    label = _image_deployment(ref)
    if label is None and not _docker_answers():
        raise ConfigError(f"{role} {spec!r}: an image side runs on Docker, and no Docker engine answers; "
                          "start one (or set DOCKER_HOST), or compare deployments on the process target instead")
    if label is None:
        raise ConfigError(f"{role} {spec!r}: Docker has no image {ref!r}; list them with `docker images 'mldeploy/*'` "
                          "(build one with `mldeploy package DEPLOYMENT`)")
    if project is None or label not in project.deployments:
        v2 = next((found for place in _v2_folders(project, folder) if label and (found := find_v2_deployment(label, place))), None)
        if v2 is not None:  # built from a v2 deployment file of this folder (blue/green)
            loaded = load_project(v2)
            return Side(role, spec, "image", loaded, next(iter(loaded.deployments.values())), image=ref)
        where = f"{project.config_path} does not declare" if project is not None else f"no mldeploy.yaml nor v2 file in {folder} declares"
        raise ConfigError(f"{role} {spec!r}: the image was built for deployment {label or '(unlabelled)'!r}, which "
                          f"{where}; compare it from the project that built it (--config)")
    return Side(role, spec, "image", project, project.deployments[label], image=ref)


def _git(args: list[str], cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"git {' '.join(args)} in {cwd}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def _resolve_git(role: str, spec: str, project: Optional[Project], other: Optional[Side], stack: ExitStack,
                 progress: Callable[[str], None]) -> Side:
    if project is None and other is not None and other.kind == "v2":
        project = other.project  # a folder of v2 files: the other side's file, as committed at REV
    if project is None:
        raise ConfigError(f"{role} {spec!r}: a git: side needs the project's mldeploy.yaml (run inside the repository or pass --config)")
    rest = spec[len(GIT_PREFIX):]
    if not rest:
        raise ConfigError(f"{role} {spec!r}: name a revision, e.g. git:main or git:HEAD~1")
    found = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=project.root, capture_output=True, text=True)
    if found.returncode != 0:
        raise ConfigError(f"{role} {spec!r}: {project.root} is not in a git repository ({found.stderr.strip()}); "
                          "a git: side checks the project out at that revision, so it must be committed in one")
    top = Path(found.stdout.strip())
    revision, name = _revision_and_name(rest, top)
    if name is None:
        if other is None:
            raise ConfigError(f"{role} {spec!r}: both sides are git: revisions; name the deployment as git:REV:NAME")
        name = other.deployment.name
    folder = Path(tempfile.mkdtemp(prefix="mldeploy-compare-git-"))
    checkout = folder / "tree"
    progress(f"checking out {revision[:10]} ({rest}) into {checkout}")
    _git(["worktree", "add", "--detach", str(checkout), revision], top)
    stack.callback(_remove_worktree, top, checkout, folder)
    config = checkout / project.config_path.resolve().relative_to(top)
    if not config.is_file():
        raise ConfigError(f"{role} {spec!r}: {config.relative_to(checkout)} does not exist at {revision[:10]}")
    try:
        loaded = load_project(config)
    except ConfigError as exc:
        raise ConfigError(f"{role} {spec!r}: the project as committed at {revision[:10]} does not load (a file it needs is "
                          f"not committed, e.g. an ignored model?): {exc}") from None
    if name not in loaded.deployments:
        raise ConfigError(f"{role} {spec!r}: {config.relative_to(checkout)} at {revision[:10]} has no deployment {name!r} "
                          f"(it has {', '.join(loaded.deployments)}); write git:REV:NAME")
    return Side(role, spec, "git", loaded, loaded.deployments[name], revision=revision)


def _revision_and_name(rest: str, top: Path) -> tuple[str, Optional[str]]:
    """`REV` or `REV:NAME` into the commit and the deployment name (None: the other side's)."""
    candidates = [(rest, None)]
    if ":" in rest:
        head, _, tail = rest.rpartition(":")
        candidates.insert(0, (head, tail))
    for revision, name in candidates:
        done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], cwd=top,
                              capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.strip(), name
    remote = subprocess.run(["git", "for-each-ref", "--format=%(refname:short)", f"refs/remotes/*/{rest}"], cwd=top,
                            capture_output=True, text=True).stdout.split()
    if remote:  # a fresh clone has origin/main but no local main
        raise ConfigError(f"git:{rest}: {rest!r} is not a revision of the repository at {top}, but {remote[0]!r} is: "
                          f"write git:{remote[0]}, or make the branch with `git branch {rest} {remote[0]}`")
    raise ConfigError(f"git:{rest}: {rest!r} is not a revision of the repository at {top}; try git:main or git:HEAD~1. "
                      "A CI checkout is shallow and has no local branch but its own: fetch the base branch first, e.g. "
                      "`git fetch --no-tags --depth=1 origin +refs/heads/main:refs/heads/main` (docs/ci.md)")


def _remove_worktree(top: Path, checkout: Path, folder: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=top, capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=top, capture_output=True)
