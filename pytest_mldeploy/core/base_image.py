"""The base image every service image starts from, and how to make one without a registry.

Users with a registry set `base_image` (default `python:3.11-slim-bookworm`) and pull it.
Where nothing can be pulled, `bootstrap_base_image` builds an equivalent local base from
Debian packages (`core/debian_rootfs.py`, mmdebstrap) and `docker import`s it, so builds stay offline. Service
images need only `python3` with `venv` in the base; `ensure_base_image` finds the image (pulling
it once where a registry answers, else falling back from the default to the offline base) and
the Python and glibc versions the wheelhouse must target.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from .._version import __version__
from ..errors import BuildError
from .cache import cache_root, file_lock
from .debian_rootfs import BASE_PACKAGES, DEFAULT_SUITE, apt_install, build_rootfs
from .environment import manylinux_platforms

DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
DEFAULT_PYTHON = "3.11"  # the Python of DEFAULT_BASE_IMAGE and of the offline base
LOCAL_BASE_TAG = "mldeploy/base:bookworm-py3.11"
# Fixed timestamp for reproducible outputs when SOURCE_DATE_EPOCH is not set (2024-01-01).
DEFAULT_SOURCE_DATE_EPOCH = 1704067200
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Progress = Optional[Callable[[str], None]]


@dataclass(frozen=True)
class BaseImage:
    """A base image present in the local engine: its tag, id and what it runs."""

    tag: str
    id: str
    python_version: str  # "3.11"
    glibc_version: str  # "2.36"; decides which manylinux wheels run in it

    @property
    def manylinux_platforms(self) -> list[str]:
        """Wheel platform tags this base can run, newest first (for `pip download --platform`)."""
        return manylinux_platforms(self.glibc_version)


def source_date_epoch() -> int:
    """The timestamp stamped on every file of a reproducible output (env SOURCE_DATE_EPOCH wins)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else DEFAULT_SOURCE_DATE_EPOCH


def _docker_client(client=None):
    if client is not None:
        return client
    import docker

    from .docker_client import docker_client

    try:
        return docker_client()
    except docker.errors.DockerException as exc:
        raise BuildError(f"Docker engine: cannot connect ({exc}); start Docker or set DOCKER_HOST") from exc


# Azure ML's curated and base images (conda inside, pulled from Microsoft's registry). Inference
# configs written by the SDK always name one; mldeploy builds on its own base instead.
AZURE_IMAGE_PREFIXES = ("mcr.microsoft.com/azureml/", "viennaglobal.azurecr.io/", "azureml/")


def is_azure_curated(tag: str) -> bool:
    """Whether `tag` is one of Azure ML's own base/curated images (`mcr.microsoft.com/azureml/...`)."""
    return tag.lower().startswith(AZURE_IMAGE_PREFIXES)


def python_base_tag(python_version: str) -> str:
    """The public base with that Python: `python:X.Y-slim-bookworm`."""
    return f"python:{python_version}-slim-bookworm"


def find_or_pull(tag: str, *, client=None) -> tuple[Optional[BaseImage], Optional[str]]:
    """(`tag` as a BaseImage, None) when it is local or pulls; (None, the registry's reason) otherwise."""
    import docker

    client = _docker_client(client)
    try:
        return describe_base_image(client.images.get(tag), tag, client=client), None
    except docker.errors.ImageNotFound:
        pass
    if tag.split(":")[0] == LOCAL_BASE_TAG.split(":")[0]:
        return None, "an offline base is built by `mldeploy base-image`, never pulled"
    reason = _pull(client, tag)
    if reason is not None:
        return None, reason
    return describe_base_image(client.images.get(tag), tag, client=client), None


def offline_base(*, client=None) -> Optional[BaseImage]:
    """The offline base `mldeploy/base:bookworm-py3.11` when it is in the local engine, else None."""
    import docker

    client = _docker_client(client)
    try:
        return describe_base_image(client.images.get(LOCAL_BASE_TAG), LOCAL_BASE_TAG, client=client)
    except docker.errors.ImageNotFound:
        return None


def missing_base_message(tag: str) -> str:
    return (
        f"base image {tag} is not in the local Docker engine and cannot be pulled. "
        f"Fix: `docker pull {tag}` where a registry is reachable, or build an offline base with "
        f"`mldeploy base-image` (tag {LOCAL_BASE_TAG}) and set `base_image: {LOCAL_BASE_TAG}` in "
        f"mldeploy.yaml (or MLDEPLOY_BASE_IMAGE={LOCAL_BASE_TAG})"
    )


_FALLBACK_NOTICED: set[str] = set()
"""Base tags whose fall-back to the offline base was already announced by this process."""


def ensure_base_image(
    tag: str = DEFAULT_BASE_IMAGE, *, client=None, bootstrap: Optional[bool] = None, progress: Progress = None
) -> BaseImage:
    """Return the base image `tag` from the local engine, pulling it once when it is missing.

    Users with a registry get the image they named, as `docker build` would. Where it cannot be
    pulled (an air-gapped host), the default base falls back to the offline one that
    `mldeploy base-image` builds, with a notice; tags under `mldeploy/base` are bootstrapped when
    `bootstrap` allows (default: yes for them); anything else raises `BuildError` saying how to get it.
    """
    import docker

    client = _docker_client(client)
    try:
        return describe_base_image(client.images.get(tag), tag, client=client)
    except docker.errors.ImageNotFound:
        pass
    local = tag.split(":")[0] == LOCAL_BASE_TAG.split(":")[0]
    if bootstrap is None:
        bootstrap = local
    if local:
        if not bootstrap:
            raise BuildError(missing_base_message(tag))
        return ensure_offline_base(tag, client=client, progress=progress)[0]
    pulled = _pull(client, tag)
    if pulled is None:
        return describe_base_image(client.images.get(tag), tag, client=client)
    if tag == DEFAULT_BASE_IMAGE:
        if progress and tag not in _FALLBACK_NOTICED:  # once per run, not once per deployment built
            _FALLBACK_NOTICED.add(tag)
            progress(f"base image {tag} cannot be pulled ({pulled}); using the offline base {LOCAL_BASE_TAG}"
                     " (built from Debian packages the first time, about a minute)")
        return ensure_offline_base(LOCAL_BASE_TAG, client=client, progress=progress)[0]
    raise BuildError(f"{missing_base_message(tag)} (pull failed: {pulled})")


def _pull(client, tag: str) -> Optional[str]:
    """Pull `tag`; None when it worked, else the registry's one-line reason."""
    import docker

    repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
    try:
        client.images.pull(repository, tag=version)
    except docker.errors.APIError as exc:
        return (getattr(exc, "explanation", None) or str(exc)).splitlines()[0][:200]
    return None


def describe_base_image(image, tag: str, *, client=None) -> BaseImage:
    """Find the Python and glibc versions of `image`: its labels, else one probe container (cached by id)."""
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    python_version, glibc = labels.get("mldeploy.python-version"), labels.get("mldeploy.glibc-version")
    if not (python_version and glibc):
        python_version, glibc = _probe(image, tag, _docker_client(client))
    return BaseImage(tag=tag, id=image.id, python_version=python_version, glibc_version=glibc)


def _probe(image, tag: str, client) -> tuple[str, str]:
    """Run `python3` once in the image to read its version and glibc; remembered per image id."""
    probe_cache = cache_root() / "base-images.json"
    try:
        cache = json.loads(probe_cache.read_text())
    except (OSError, ValueError):
        cache = {}
    if image.id in cache:
        return tuple(cache[image.id])  # type: ignore[return-value]
    script = "import sys, platform; print('%d.%d' % sys.version_info[:2], platform.libc_ver()[1])"
    try:
        out = client.containers.run(image.id, ["python3", "-c", script], remove=True, network_disabled=True,
                                    entrypoint=[])
    except Exception as exc:  # docker-py raises ContainerError, APIError, ...
        raise BuildError(
            f"base image {tag}: `python3` did not run in it ({exc}); the base needs python3 with the venv module, "
            f"e.g. {DEFAULT_BASE_IMAGE} or `mldeploy base-image`"
        ) from exc
    python_version, glibc = out.decode().split()
    cache[image.id] = [python_version, glibc]
    probe_cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = probe_cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache))
    tmp.replace(probe_cache)
    return python_version, glibc


def ensure_offline_base(
    tag: str = LOCAL_BASE_TAG, *, client=None, rebuild: bool = False, progress: Progress = None
) -> tuple[BaseImage, bool]:
    """The offline base `tag`, bootstrapped when missing (always, with `rebuild`): (image, whether built).

    Holds a per-tag file lock under the cache folder while it looks and builds, so two
    `mldeploy base-image --if-missing` (or two test runs) at once bootstrap once: the second
    waits, then finds the image the first imported.
    """
    import docker

    client = _docker_client(client)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", tag)
    with file_lock(cache_root() / "locks" / f"base-image-{safe}.lock"):
        if not rebuild:
            try:
                return describe_base_image(client.images.get(tag), tag, client=client), False
            except docker.errors.ImageNotFound:
                pass
        apt_install("mmdebstrap", "mmdebstrap", "builds the offline base image", progress=progress)
        return bootstrap_base_image(tag, client=client, progress=progress), True


def bootstrap_base_image(
    tag: str = LOCAL_BASE_TAG,
    *,
    client=None,
    suite: str = DEFAULT_SUITE,
    mirrors: Optional[Sequence[str]] = None,
    modes: Optional[Sequence[str]] = None,
    packages: Sequence[str] = BASE_PACKAGES,
    progress: Progress = None,
) -> BaseImage:
    """Build a Debian `suite` rootfs with python3 + venv (mmdebstrap) and `docker import` it as `tag`.

    Builds unconditionally and without a lock: `ensure_offline_base` is the safe entry point.
    Reproducible for the same mirror content (`core/debian_rootfs.py`); the import stamps the same
    labels and creation date every time.
    """
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="mldeploy-base-") as tmp:
        os.chmod(tmp, 0o755)  # unshare mode writes as a subordinate uid
        out = Path(tmp) / "rootfs.tar"
        rootfs = build_rootfs(out, suite=suite, mirrors=mirrors, modes=modes, packages=packages,
                              epoch=source_date_epoch(), fallback=f"`docker pull {DEFAULT_BASE_IMAGE}`", progress=say)
        say(f"docker import as {tag} (python {rootfs.python_version}, glibc {rootfs.glibc_version})")
        client = _docker_client(client)
        repository, _, image_tag = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(source_date_epoch()))
        labels = {
            "org.opencontainers.image.title": "mldeploy offline base",
            "org.opencontainers.image.description": f"Debian {suite} with python3 {rootfs.python_version} and venv",
            "org.opencontainers.image.created": created,
            "mldeploy.python-version": rootfs.python_version,
            "mldeploy.glibc-version": rootfs.glibc_version,
            "mldeploy.debian-suite": suite,
            "mldeploy.built-by": f"pytest-mldeploy {__version__}",
        }
        changes = [
            f"ENV PATH={IMAGE_PATH}",
            "ENV LANG=C.UTF-8",
            "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items()),
            'CMD ["python3"]',
        ]
        try:
            client.api.import_image_from_file(str(out), repository=repository, tag=image_tag, changes=changes)
        except Exception as exc:
            raise BuildError(f"base image: docker import of {tag} failed: {exc}") from exc
    image = client.images.get(tag)
    return BaseImage(tag=tag, id=image.id, python_version=rootfs.python_version, glibc_version=rootfs.glibc_version)
