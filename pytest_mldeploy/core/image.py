"""Content-addressed service images (Azure ML's `Model.package`), built offline.

`write_build_context` assembles everything a plain `docker build` needs: the Dockerfile, the
wheelhouse resolved on the host, the registered models and the source in the Azure ML layout,
and the scoring server. `build_image` hashes every input into the tag
`mldeploy/<deployment>:<hash[:16]>`; when that tag exists it is reused without calling Docker's
build at all, otherwise the context is built with the classic builder. File times and modes are
normalised so the same inputs give the same layers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

from .._version import __version__
from ..errors import BuildError
from ..server import contract
from . import dockerfile as df
from . import servers
from .base_choice import check_python_pin, choose_base
from .base_image import BaseImage, Progress, python_base_tag, source_date_epoch
from .cache import cache_root
from .hashing import file_sha256
from .registry import Registry
from .server_copy import copy_server
from .environment import UnresolvableRequirement, ensure_wheelhouse, wheelhouse_digest

if TYPE_CHECKING:
    from docker import DockerClient

    from .config import Deployment, Project
    from .registry import RegisteredModel

IMAGE_REPOSITORY_PREFIX = "mldeploy/"
_SKIP_NAMES = {"__pycache__", ".git", ".mldeploy", ".pytest_cache", ".mypy_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")
_LOG_TAIL = 25


@dataclass(frozen=True)
class BuiltImage:
    """A service image in the local engine and how it came to be."""

    tag: str
    id: str
    reused: bool
    inputs_hash: str
    build_seconds: float


@dataclass(frozen=True)
class BuildContext:
    """A written build context: where it is, its inputs hash and the tag it builds."""

    path: Path
    inputs_hash: str
    tag: str
    base: BaseImage


def image_repository(deployment_name: str) -> str:
    """`mldeploy/<name>` with the name made a valid Docker repository component."""
    name = re.sub(r"[^a-z0-9._-]+", "-", deployment_name.lower()).strip("._-") or "deployment"
    return IMAGE_REPOSITORY_PREFIX + name


def image_tag(deployment_name: str, inputs_hash: str) -> str:
    """The tag of a service image: `mldeploy/<deployment>:<first 16 hex of the inputs hash>`."""
    return f"{image_repository(deployment_name)}:{inputs_hash[:16]}"


def _skipped(path: Path) -> bool:
    return path.name in _SKIP_NAMES or path.suffix in _SKIP_SUFFIXES


def tree_digest(root: Path) -> str:
    """A sha256 over every file under `root`: relative path, executable bit, content (symlinks: target)."""
    digest = hashlib.sha256()
    if not root.exists():
        return digest.hexdigest()
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            executable = "x" if os.stat(path).st_mode & stat.S_IXUSR else "-"
            digest.update(f"F {rel} {executable} {file_sha256(path)}\n".encode())
        elif path.is_dir():
            digest.update(f"D {rel}\n".encode())
    return digest.hexdigest()


def inputs_hash(base_image_id: str, wheels_digest: str, parts: Mapping[str, str], dockerfile_text: str) -> str:
    """The content hash of an image: base image id, wheelhouse, each context part, the Dockerfile."""
    payload = {
        "base": base_image_id,
        "wheels": wheels_digest,
        "parts": dict(sorted(parts.items())),
        "dockerfile": hashlib.sha256(dockerfile_text.encode()).hexdigest(),
        "template": df.TEMPLATE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def normalise_tree(root: Path, epoch: Optional[int] = None) -> None:
    """Set every mtime under `root` to SOURCE_DATE_EPOCH and modes to 0644/0755 (dirs, executables)."""
    epoch = source_date_epoch() if epoch is None else epoch
    for path in [*root.rglob("*"), root]:
        if path.is_symlink():
            os.utime(path, (epoch, epoch), follow_symlinks=False)
            continue
        mode = os.stat(path).st_mode
        os.chmod(path, 0o755 if path.is_dir() or mode & stat.S_IXUSR else 0o644)
        os.utime(path, (epoch, epoch))


def _copy_filtered(src: Path, dst: Path) -> None:
    """Copy a tree without caches and VCS folders; hard links where the filesystem allows."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(_skipped(Path(part)) for part in rel.parts):
            continue
        target = dst / rel
        if path.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(path), target)
        elif path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _model_labels(models: Sequence["RegisteredModel"]) -> dict[str, str]:
    listed = ",".join(f"{m.name}:{m.version}" for m in sorted(models, key=lambda m: (m.name, str(m.version))))
    return {"mldeploy.models": listed} if listed else {}


def write_build_context(
    deployment: "Deployment",
    project: "Project",
    out_dir: Union[str, Path],
    registry: Optional[Registry] = None,
    *,
    client: Optional["DockerClient"] = None,
    base_image: Union[str, BaseImage, None] = None,
    progress: Progress = None,
) -> Path:
    """Write the complete build context for `deployment` into `out_dir` (which must be empty or new).

    The result builds with a plain `docker build -t NAME OUT_DIR` and no network: `Dockerfile`,
    `wheels/`, `models/azureml-models/NAME/VERSION/`, `server/pytest_mldeploy/`, `app/`.
    Registers the deployment's models in the registry first. `base_image` is a tag (default:
    MLDEPLOY_BASE_IMAGE, the deployment's, the project's) or an already inspected `BaseImage`.
    """
    return _prepare_context(deployment, project, Path(out_dir), registry, client, base_image, progress, link=False).path


def _prepare_context(
    deployment: "Deployment",
    project: "Project",
    out: Path,
    registry: Optional[Registry],
    client: Optional["DockerClient"],
    base_image: Union[str, BaseImage, None],
    progress: Progress,
    *,
    link: bool,
) -> BuildContext:
    """Write the context; `link` hard-links the wheels from the cache (only for throw-away contexts)."""
    say = progress or (lambda _msg: None)
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        raise BuildError(f"build context {out}: the folder is not empty; give a new or empty folder")
    for notice in deployment.environment.notices():
        say(notice)
    if isinstance(base_image, BaseImage):
        base = base_image
        check_python_pin(deployment, base, f"base image {base.tag}", say)
    else:
        base = choose_base(deployment, project, base_image, client=client, progress=progress)
    say(f"resolving requirements for Python {base.python_version}")
    wheelhouse = _wheelhouse(deployment, base)

    registry = registry or Registry.for_project(project)
    models = registry.register_deployment_models(deployment)
    out.mkdir(parents=True, exist_ok=True)
    say(f"laying out {deployment.name} with {len(models)} model(s)")
    from .layout import lay_out_app, link_or_copy

    staging = Path(tempfile.mkdtemp(prefix=".layout-", dir=out))
    try:
        layout = lay_out_app(deployment, models, registry, staging)
        (out / "models").mkdir()
        if models:
            _copy_filtered(staging / contract.MODELS_DIRNAME, out / "models" / contract.MODELS_DIRNAME)
            shutil.rmtree(staging / contract.MODELS_DIRNAME)
        _copy_filtered(staging, out / "app")
        # Without models the (empty) azureml-models folder travels in the source layer, so
        # AZUREML_MODEL_DIR exists in the image and no COPY adds an empty layer.
        if not models:
            (out / "app" / contract.MODELS_DIRNAME).mkdir(parents=True, exist_ok=True)
        (out / "app").mkdir(exist_ok=True)
        env = layout.relocated(contract.DEFAULT_APP_ROOT)
        # Keys are secrets and may be generated per run: the target passes them at start, never the image.
        env.pop(contract.AUTH_KEYS_VAR, None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    (out / "wheels").mkdir()
    for item in sorted(wheelhouse.iterdir()):
        if item.is_file() and link and item.suffix == ".whl":
            link_or_copy(item, out / "wheels" / item.name)
        elif item.is_file():
            shutil.copy2(item, out / "wheels" / item.name)
    (out / "server").mkdir()
    server = servers.server_of(deployment)
    if server == servers.MLDEPLOY:
        copy_server(out / "server")
    normalise_tree(out)

    labels = {
        "org.opencontainers.image.title": f"{deployment.name} scoring service",
        "org.opencontainers.image.description": f"Azure ML-style scoring service for deployment {deployment.name}",
        "org.opencontainers.image.base.name": base.tag,
        "org.opencontainers.image.base.digest": base.id,
        "org.opencontainers.image.vendor": "pytest-mldeploy",
        "mldeploy.deployment": deployment.name,
        "mldeploy.built-by": f"pytest-mldeploy {__version__}",
        "mldeploy.server": server,
        "mldeploy.python-version": base.python_version,
        **_model_labels(models),
    }
    spec = df.DockerfileSpec(base_image=base.tag, env=env, labels=labels, models=bool(models), server=server,
                             entry_script=servers.entry_script_path(env) if server == servers.AZUREML else "")
    body = df.render_dockerfile(spec)
    parts = {name: tree_digest(out / name) for name in ("models", "server", "app")}
    digest = inputs_hash(base.id, wheelhouse_digest(wheelhouse), parts, body)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(source_date_epoch()))
    # One LABEL instruction at the end (each is a commit): the inputs hash joins the deployment's labels.
    text = df.render_dockerfile(replace(spec, labels={**labels, "mldeploy.inputs": digest, "org.opencontainers.image.created": created}))
    (out / "Dockerfile").write_text(text)
    (out / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n")
    normalise_tree(out)
    return BuildContext(path=out, inputs_hash=digest, tag=image_tag(deployment.name, digest), base=base)


def _wheelhouse(deployment: "Deployment", base: BaseImage) -> Path:
    """The deployment's wheelhouse for the base's Python; a failure names the conda pin and the Python it came from."""
    environment = deployment.environment
    origins = environment.origins()
    try:
        return ensure_wheelhouse(servers.requirements_for(deployment), base.python_version, base.manylinux_platforms,
                                 binary_only=list(origins))
    except UnresolvableRequirement as exc:
        pin = deployment.environment.python_pin()
        other_python = pin is not None and pin.version != base.python_version
        origin = next((o for line, o in origins.items() if _same_project(line, exc.requirement)), None)
        if origin is None and not other_python:
            raise  # a typo or a pip-section pin: pip's own words say it best
        what = f"{exc.requirement} ({origin})" if origin else exc.requirement
        written_for, other_base = "", ""
        if pin is not None and other_python:
            written_for = f"; the environment was written for Python {pin.version} ({pin.source})"
            other_base = f", or build on a Python {pin.version} base ({python_base_tag(pin.version)} where a registry answers)"
        raise BuildError(
            f"requirements: {what} has no wheel for CPython {base.python_version}, the base image's Python{written_for}. "
            f"Fix: pin a version published for Python {base.python_version} (or loosen the pin, e.g. "
            f"{_loosened(exc.requirement)}){other_base}. pip said:\n{exc.pip_log}"
        ) from None


def _same_project(line: str, requirement: str) -> bool:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        return canonicalize_name(Requirement(line).name) == canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return line == requirement


def _loosened(requirement: str) -> str:
    """`scikit-learn==0.22.1` -> `scikit-learn>=0.22.1`: a suggestion, not applied."""
    return re.sub(r"==\s*([^,;\s]+?)(\.\*)?$", lambda m: ">=" + m.group(1), requirement.strip())


def build_image(
    deployment: "Deployment",
    project: "Project",
    registry: Optional[Registry] = None,
    *,
    client: Optional["DockerClient"] = None,
    base_image: Union[str, BaseImage, None] = None,
    progress: Progress = None,
) -> BuiltImage:
    """The service image for `deployment`, reused when its content-hash tag exists, else built.

    Raises `BuildError` for a missing base image, unresolvable requirements, or a failed build
    step (naming the Dockerfile instruction and the tail of its log).
    """
    from .base_image import _docker_client

    client = _docker_client(client)
    started = time.monotonic()
    # Next to the wheelhouses, so wheels are hard-linked into the context rather than copied.
    scratch_root = cache_root() / "contexts"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{image_repository(deployment.name).split('/')[-1]}-", dir=scratch_root))
    try:
        context = _prepare_context(deployment, project, scratch / "context", registry, client, base_image, progress, link=True)
        existing = _existing_image(client, context.tag, context.inputs_hash)
        if existing is not None:
            if progress:
                progress(f"reusing {context.tag}")
            return BuiltImage(context.tag, existing, True, context.inputs_hash, time.monotonic() - started)
        if progress:
            progress(f"building {context.tag}")
        image_id = docker_build(client, context.path, context.tag, progress=progress)
        return BuiltImage(context.tag, image_id, False, context.inputs_hash, time.monotonic() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _existing_image(client: "DockerClient", tag: str, digest: str) -> Optional[str]:
    import docker

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    return image.id if labels.get("mldeploy.inputs") == digest else None


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_LAYER = re.compile(r"^ ---> ([0-9a-f]{12,64})$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def docker_build(client: "DockerClient", context: Path, tag: str, *, progress: Progress = None) -> str:
    """Build `context` as `tag` with the classic builder; return the image id.

    A failure raises `BuildError` with the failing step's instruction and the last log lines,
    instead of docker-py's exception, after removing the intermediate images this build made.
    """
    import docker

    log: list[str] = []
    step = ""
    image_id = None
    created: list[str] = []  # intermediate images this build committed (not taken from the cache)
    cached = False
    try:
        for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True, pull=False):
            for line in _ANSI.sub("", chunk.get("stream", "")).splitlines():
                if not line.strip():
                    continue
                log.append(line)
                match = _STEP.match(line.strip())
                layer = _LAYER.match(line)
                if match:
                    step = f"step {match.group(1)}/{match.group(2)}: {match.group(3)}"
                    cached = False
                    if progress:
                        progress(step)
                elif line.strip() == "---> Using cache":
                    cached = True
                elif layer and not cached and not step.split(": ", 1)[-1].startswith(("FROM", "ARG")):
                    created.append(layer.group(1))
            aux = chunk.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = aux["ID"]
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message", "")
                log.append(_ANSI.sub("", message).strip())
                _remove_quietly(client, created)
                tail = "\n".join(log[-_LOG_TAIL:])
                raise BuildError(f"image {tag}: build failed at {step or 'the start'}\n{tail}")
    except docker.errors.APIError as exc:
        _remove_quietly(client, created)
        raise BuildError(f"image {tag}: Docker refused the build at {step or 'the start'}: {exc.explanation or exc}") from exc
    if image_id is None:
        image_id = client.images.get(tag).id
    return image_id


def _remove_quietly(client: "DockerClient", image_ids: Sequence[str]) -> None:
    """Remove images newest first; one still used (as another build's cache parent) stays."""
    import docker

    for image_id in reversed(image_ids):
        try:
            client.images.remove(image_id, noprune=True)
        except docker.errors.APIError:
            pass
