"""Which base image a deployment's service image is built on, and saying so when it is not the one asked for.

A base someone named (the caller, `MLDEPLOY_BASE_IMAGE`, `base_image:` of the deployment or the
project) is used as is; otherwise mldeploy picks `python:X.Y-slim-bookworm` for the environment's
Python pin, and the offline base where that cannot be pulled. `core/image.py` asks here before it
writes a build context; `core/base_image.py` finds, pulls and builds the bases themselves.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Optional

from ..errors import BuildError
from .base_image import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_PYTHON,
    LOCAL_BASE_TAG,
    BaseImage,
    Progress,
    ensure_base_image,
    ensure_offline_base,
    find_or_pull,
    is_azure_curated,
    missing_base_message,
    offline_base,
    python_base_tag,
)

if TYPE_CHECKING:
    from docker import DockerClient

    from .config import Deployment, Project


def resolve_base_tag(deployment: "Deployment", project: "Project", base_image: Optional[str] = None) -> str:
    """Which base image to use: the argument, else MLDEPLOY_BASE_IMAGE, else the deployment's, else the project's."""
    return (
        base_image
        or os.environ.get("MLDEPLOY_BASE_IMAGE")
        or deployment.base_image
        or project.base_image
        or DEFAULT_BASE_IMAGE
    )


def base_request(deployment: "Deployment", project: "Project", base_image: Optional[str] = None) -> tuple[str, Optional[str]]:
    """(tag, who asked for it) per `resolve_base_tag`; who is None when nobody did (mldeploy's default).

    An Azure curated image (`mcr.microsoft.com/azureml/...`, what the SDK writes into every
    inferenceconfig.json) counts as nobody's choice: mldeploy picks its own base for the Python pin.
    """
    tag = resolve_base_tag(deployment, project, base_image)
    if base_image:
        source: Optional[str] = "the base image asked for"
    elif os.environ.get("MLDEPLOY_BASE_IMAGE"):
        source = "MLDEPLOY_BASE_IMAGE"
    else:
        # load_project records who set it; a deployment made otherwise counts as set unless it is the default.
        source = deployment.base_image_source or (None if tag == DEFAULT_BASE_IMAGE else "base_image")
    return tag, (None if is_azure_curated(tag) else source)


_BASE_NOTICES: set[str] = set()
"""Base image notices this process has already shown."""


def choose_base(
    deployment: "Deployment",
    project: "Project",
    base_image: Optional[str] = None,
    *,
    client: Optional["DockerClient"] = None,
    progress: Progress = None,
) -> BaseImage:
    """The base image to build `deployment` on, saying in one line when it is not the one asked for.

    A base someone named (argument, MLDEPLOY_BASE_IMAGE, `base_image:`) is used as is. Otherwise
    the Python pin picks `python:X.Y-slim-bookworm` (pulled where a registry answers); where it
    cannot be pulled, the offline base is used, with a notice when its Python differs from a
    conda `python=` pin. A strict pin (`environment.python`) no base has is an error listing the choices.
    """
    said = progress or (lambda _msg: None)

    def say(message: str) -> None:
        # Once per run, not once per deployment built (or per rebuild of the same one).
        if message not in _BASE_NOTICES:
            _BASE_NOTICES.add(message)
            said(message)

    pin = deployment.environment.python_pin()
    tag, source = base_request(deployment, project, base_image)
    name = deployment.name
    lead = ""
    if is_azure_curated(tag):
        lead = f"deployment {name}: base image {tag} is Azure's curated image (conda, not built here), mapped to mldeploy's base for Python {pin.version if pin else DEFAULT_PYTHON}; "
    if source is not None:
        base = ensure_base_image(tag, client=client, progress=progress)
        check_python_pin(deployment, base, f"base image {base.tag} (from {source})", say)
        return base
    wanted = python_base_tag(pin.version if pin else DEFAULT_PYTHON)
    found, reason = find_or_pull(wanted, client=client)
    if found is not None:
        if lead:
            say(lead + f"building on {wanted}")
        check_python_pin(deployment, found, f"base image {wanted}", say)
        return found
    offline = offline_base(client=client)
    if offline is None and not (pin and pin.strict):
        # An air-gapped host on its first run: bootstrap the offline base rather than stop.
        say(f"base image {wanted} cannot be pulled ({reason}) and the offline base {LOCAL_BASE_TAG} is missing: "
            "building it from Debian packages (about a minute, once)")
        offline = ensure_offline_base(LOCAL_BASE_TAG, client=client, progress=progress)[0]
    if pin is None or pin.version == DEFAULT_PYTHON and (offline is None or offline.python_version == pin.version):
        if offline is None:
            raise BuildError(f"{missing_base_message(wanted)} (pull failed: {reason})")
        say(lead + f"base image {wanted} cannot be pulled ({reason}); using the offline base {LOCAL_BASE_TAG}")
        return offline
    if offline is None:
        raise BuildError(
            f"deployment {name}: {pin.source} asks for Python {pin.version} and no base image is available: {wanted} "
            f"cannot be pulled ({reason}) and the offline base {LOCAL_BASE_TAG} is missing; choose one: pull {wanted} "
            f"where a registry answers, build the offline base (Python {DEFAULT_PYTHON}) with `mldeploy base-image`, "
            "or set base_image to an image you have"
        )
    if pin.strict:
        raise BuildError(
            f"deployment {name}: environment.python asks for Python {pin.version} and no base image has it: {wanted} "
            f"cannot be pulled ({reason}) and the offline base {LOCAL_BASE_TAG} has Python {offline.python_version}; "
            f"choose one: pull {wanted} where a registry answers, set base_image to an image with Python {pin.version}, "
            f"or remove environment.python to build on Python {offline.python_version}"
        )
    say(lead + f"{pin.source} asks for Python {pin.version}, but {wanted} cannot be pulled ({reason}): building on "
        f"the offline base {LOCAL_BASE_TAG} with Python {offline.python_version}, and packages are resolved for it")
    return offline


def check_python_pin(deployment: "Deployment", base: BaseImage, chosen: str, say: Callable[[str], None]) -> None:
    """Refuse a strict pin (`environment.python`) the base does not have; say so for a conda pin."""
    pin = deployment.environment.python_pin()
    if pin is None or pin.version == base.python_version:
        return
    name = deployment.name
    if pin.strict:
        raise BuildError(
            f"deployment {name}: environment.python is {pin.version} but base image {base.tag} has Python "
            f"{base.python_version}; choose one: set base_image to a Python {pin.version} image (e.g. "
            f"{python_base_tag(pin.version)}), remove base_image to let mldeploy pick one, or set environment.python "
            f'to "{base.python_version}"'
        )
    say(f"deployment {name}: {pin.source} asks for Python {pin.version}; {chosen} has Python {base.python_version}, "
        "which is used: packages are resolved for it")
