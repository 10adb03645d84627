"""Removing a deployment's service images: all of them, or all but the newest few.

Service images are content-addressed caches (`core/image.py` builds them): an image removed here
is rebuilt on demand when its inputs return. Base images are never touched, nor an image a
container still uses when pruning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional

from .base_image import _docker_client
from .image import image_repository

if TYPE_CHECKING:
    from docker import DockerClient


def remove_deployment_images(
    deployment_name: str, *, client: Optional["DockerClient"] = None, keep: Iterable[str] = ()
) -> list[str]:
    """Delete this deployment's service images (except tags in `keep`) and their dangling build stages.

    Returns the removed tags. Base images are never touched.
    """
    client = _docker_client(client)
    keep = set(keep)
    removed = []
    for image in client.images.list(name=image_repository(deployment_name)):
        for tag in image.tags:
            if tag not in keep:
                client.images.remove(tag, noprune=False)
                removed.append(tag)
    client.images.prune(filters={"dangling": True, "label": f"mldeploy.deployment={deployment_name}"})
    return removed


def prune_deployment_images(deployment_name: str, *, keep_last: int = 1, client: Optional["DockerClient"] = None) -> list[str]:
    """Remove all but the newest `keep_last` images of a deployment, sparing any a container uses.

    Images are content-addressed caches: an old one is rebuilt on demand when its inputs return.
    Returns the removed tags.
    """
    client = _docker_client(client)
    in_use = {c.attrs.get("Image") for c in client.containers.list(all=True)}
    images = sorted(client.images.list(name=image_repository(deployment_name)),
                    key=lambda image: image.attrs.get("Created", ""), reverse=True)
    removed = []
    for image in images[max(keep_last, 0):]:
        if image.id in in_use:
            continue
        for tag in image.tags:
            client.images.remove(tag, noprune=False)
            removed.append(tag)
    return removed
