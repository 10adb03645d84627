"""The base image every service image starts from, and how to make one without a registry.

Users with a registry set `base_image` (default `python:3.11-slim-bookworm`) and pull it.
Where nothing can be pulled, `bootstrap_base_image` builds an equivalent local base from
Debian packages with `mmdebstrap` and `docker import`s it, so builds stay offline. Service
images need only `python3` with `venv` in the base; `ensure_base_image` finds the image (pulling
it once where a registry answers, else falling back from the default to the offline base) and
the Python and glibc versions the wheelhouse must target.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from .._version import __version__
from ..errors import BuildError
from .cache import cache_root, file_lock
from .environment import manylinux_platforms

DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
DEFAULT_PYTHON = "3.11"  # the Python of DEFAULT_BASE_IMAGE and of the offline base
LOCAL_BASE_TAG = "mldeploy/base:bookworm-py3.11"
DEFAULT_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "python-is-python3")
# Tried in this order; `root` only when running as root, `unshare` needs user namespaces,
# `fakechroot` needs the fakechroot and fakeroot tools.
MODES = ("root", "unshare", "fakechroot")
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


def host_mirrors(
    suite: str = DEFAULT_SUITE,
    sources: Iterable[Path] = (),
) -> list[str]:
    """The host's apt sources for `suite` (and its -updates/-security) as one-line `deb` entries.

    Reads deb822 `*.sources` and classic `*.list` files from /etc/apt (or `sources`), so the base
    is built from the same mirror the host uses; falls back to deb.debian.org.
    """
    files = list(sources) or sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + sorted(
        Path("/etc/apt/sources.list.d").glob("*.list")
    ) + [Path("/etc/apt/sources.list")]
    entries: list[str] = []
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            stanzas = [_deb822(block) for block in re.split(r"\n\s*\n", text)]
            for st in stanzas:
                if "deb" not in st.get("types", "").split() or st.get("enabled", "yes").lower() == "no":
                    continue
                for uri in st.get("uris", "").split():
                    for s in st.get("suites", "").split():
                        if s == suite or s.startswith(suite + "-"):
                            entries.append(f"deb {uri} {s} {st.get('components', 'main')}")
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
                if len(parts) >= 4 and parts[0] == "deb" and (parts[2] == suite or parts[2].startswith(suite + "-")):
                    entries.append(" ".join(parts))
    unique = list(dict.fromkeys(entries))
    return unique or [f"deb http://deb.debian.org/debian {suite} main"]


def _deb822(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def usable_modes() -> list[str]:
    """The mmdebstrap modes worth trying on this machine, in order of preference."""
    modes = []
    root = os.geteuid() == 0
    if root:
        modes.append("root")
    userns = Path("/proc/sys/kernel/unprivileged_userns_clone")
    userns_allowed = not userns.exists() or userns.read_text().strip() != "0"
    if root or (userns_allowed and shutil.which("newuidmap")):
        modes.append("unshare")
    if shutil.which("fakechroot") and shutil.which("fakeroot"):
        modes.append("fakechroot")
    return modes


def mmdebstrap_command(mode: str, suite: str, out: Path, mirrors: Sequence[str], packages: Sequence[str]) -> list[str]:
    """The mmdebstrap call for a slim, reproducible Python rootfs tarball."""
    cmd = [
        "mmdebstrap", "--variant=apt", f"--mode={mode}", "--format=tar",
        "--include=" + ",".join(packages),
        '--aptopt=APT::Install-Recommends "false"',
        '--aptopt=Acquire::Languages "none"',
    ]
    for pattern in ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"):
        cmd.append(f"--dpkgopt=path-exclude={pattern}")
    cmd.append("--dpkgopt=path-include=/usr/share/doc/*/copyright")
    # Host-specific files and leftovers that would make two builds differ.
    cmd.append('--customize-hook=rm -f "$1"/etc/resolv.conf "$1"/etc/hostname')
    cmd.append('--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old '
               '"$1"/var/log/apt/* "$1"/var/cache/ldconfig/aux-cache')
    cmd.append('--customize-hook=: > "$1"/etc/machine-id')
    return cmd + [suite, str(out), *mirrors]


def _dpkg_versions(rootfs_tar: Path, packages: Sequence[str]) -> dict[str, str]:
    """Installed versions of `packages`, read from the tarball's dpkg status file."""
    with tarfile.open(rootfs_tar) as tar:
        for member in tar:
            if member.name.lstrip("./") == "var/lib/dpkg/status":
                status = tar.extractfile(member).read().decode()
                break
        else:
            raise BuildError(f"{rootfs_tar}: no var/lib/dpkg/status; mmdebstrap produced no Debian rootfs")
    versions = {}
    for stanza in status.split("\n\n"):
        fields = _deb822(stanza)
        if fields.get("package") in packages:
            versions[fields["package"]] = fields.get("version", "")
    return versions


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

    Reproducible for the same mirror content: SOURCE_DATE_EPOCH is set, and apt lists, caches,
    logs and host files are removed. Tries the mmdebstrap modes that can work here in turn and
    raises `BuildError` with each mode's error when none does.
    """
    say = progress or (lambda _msg: None)
    if not shutil.which("mmdebstrap"):
        raise BuildError(
            "base image: mmdebstrap is not installed; `apt-get install mmdebstrap`, or `docker pull "
            f"{DEFAULT_BASE_IMAGE}` where a registry is reachable"
        )
    mirrors = list(mirrors) if mirrors else host_mirrors(suite)
    candidates = list(modes) if modes else usable_modes()
    if not candidates:
        raise BuildError(
            "base image: no mmdebstrap mode can work here (not root, no user namespaces, no fakechroot); "
            "run `mldeploy base-image` as root, or `apt-get install fakechroot fakeroot`"
        )
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(source_date_epoch()))
    failures = []
    with tempfile.TemporaryDirectory(prefix="mldeploy-base-") as tmp:
        os.chmod(tmp, 0o755)  # unshare mode writes as a subordinate uid
        out = Path(tmp) / "rootfs.tar"
        for mode in candidates:
            say(f"mmdebstrap --mode={mode} {suite} from {', '.join(m.split()[1] for m in mirrors[:1])}")
            started = time.monotonic()
            proc = subprocess.run(mmdebstrap_command(mode, suite, out, mirrors, packages), env=env,
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                say(f"rootfs ready in {time.monotonic() - started:.1f}s")
                break
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            failures.append(f"--mode={mode}: exit {proc.returncode}\n{tail}")
            out.unlink(missing_ok=True)
        else:
            raise BuildError(
                "base image: mmdebstrap failed in every mode tried; fix the first error or `docker pull "
                f"{DEFAULT_BASE_IMAGE}`:\n" + "\n\n".join(failures)
            )
        versions = _dpkg_versions(out, ("python3", "libc6"))
        python_version = ".".join(re.match(r"(\d+)\.(\d+)", versions.get("python3", "")).groups())
        glibc = re.match(r"(\d+\.\d+)", versions.get("libc6", "")).group(1)
        say(f"docker import as {tag} (python {python_version}, glibc {glibc})")
        client = _docker_client(client)
        repository, _, image_tag = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(source_date_epoch()))
        labels = {
            "org.opencontainers.image.title": "mldeploy offline base",
            "org.opencontainers.image.description": f"Debian {suite} with python3 {python_version} and venv",
            "org.opencontainers.image.created": created,
            "mldeploy.python-version": python_version,
            "mldeploy.glibc-version": glibc,
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
    return BaseImage(tag=tag, id=image.id, python_version=python_version, glibc_version=glibc)


def apt_install(package: str, command: str, purpose: str, *, progress: Progress = None) -> str:
    """The path of `command`, installing Debian `package` with apt-get first when it is missing.

    Only as root on a host with apt-get, and with a notice (`mldeploy base-image` does this for
    mmdebstrap on a fresh machine); elsewhere `BuildError` names the command to run.
    """
    found = shutil.which(command)
    if found:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        why = "not root" if apt else "no apt-get on this host"
        raise BuildError(
            f"{command} ({purpose}) is not installed and cannot be installed from here ({why}); "
            f"install the Debian package: `sudo apt-get install {package}`"
        )
    say = progress or (lambda _msg: None)
    say(f"{command} ({purpose}) is not installed: installing the Debian package {package} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [apt, "install", "-y", "-qq", package]
    proc = subprocess.run(install, env=env, capture_output=True, text=True)
    if proc.returncode != 0:  # a fresh host may have no package lists yet
        say("apt-get update (the package lists are missing or stale)")
        subprocess.run([apt, "update", "-qq"], env=env, capture_output=True, text=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
    found = shutil.which(command)
    if proc.returncode != 0 or found is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise BuildError(
            f"{command}: `apt-get install {package}` failed (exit {proc.returncode}); fix apt's error below "
            f"or install {package} by hand:\n{tail}"
        )
    say(f"installed {package}: {found}")
    return found
