"""Small helpers around the container engine's API: images, removal, ports, and its messages made fit to show."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container


def image_present(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def remove(container: Container) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)


def split_image(image: str) -> tuple[str, str | None]:
    """`repo[:tag][@digest]` → (repo, tag or digest); no tag: "latest" (never every tag)."""
    if "@" in image:
        repository, digest = image.split("@", 1)
        return repository, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


def published_port(attrs: Mapping[str, Any], port: int) -> int | None:
    bindings = ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []
    for binding in bindings:
        with contextlib.suppress(TypeError, ValueError):
            return int(binding.get("HostPort"))
    return None


def explain(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return str(explanation or exc)


def scrub(text: str) -> str:
    """An engine's message, on one line, without credentials a URL might carry."""
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", re.sub(r"\s+", " ", text)).strip()[:500]


def display_url(url: str) -> str:
    return scrub(url)


def build_hint(image: str) -> str:
    if image.split("/")[-1].startswith("unimodel-worker"):
        return "build it with `make image` (containers/build.sh)"
    return f"pull it (podman pull {image} / docker pull {image}) or build it"


def size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "instance"
