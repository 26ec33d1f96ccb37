"""One image-reference type: ``[registry[:port]/]repository[:tag][@digest]``, parsed once.

Pure. The registry part follows Docker's rule: the first path component is a registry host
when it contains '.' or ':' or is ``localhost``; otherwise the reference is a Docker Hub path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass(frozen=True)
class ImageRef:
    repository: str  # path inside the registry, e.g. "team/diabetes"
    registry: str | None = None  # host[:port]; None for a local image or Docker Hub
    tag: str | None = None
    digest: str | None = None

    @staticmethod
    def parse(text: str) -> ImageRef:
        rest, _, digest = text.partition("@")
        if digest and not DIGEST.fullmatch(digest):
            raise ValueError(f"not an image digest: {digest!r}")
        first, slash, remainder = rest.partition("/")
        registry = None
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, rest = first, remainder
        name, tag = rest, ""
        if ":" in rest.rsplit("/", 1)[-1]:  # a tag, not a registry port
            name, _, tag = rest.rpartition(":")
        if not name:
            raise ValueError(f"not an image reference: {text!r}")
        return ImageRef(repository=name, registry=registry, tag=tag or None, digest=digest or None)

    @property
    def name(self) -> str:
        """registry/repository (what ``docker push`` takes), or the repository alone."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def with_digest(self, digest: str) -> ImageRef:
        return replace(self, digest=digest)

    def pinned(self) -> str:
        """``name@digest``: what deploys run, so a moved tag never changes what serves."""
        if self.digest is None:
            raise ValueError(f"{self} has no digest")
        return f"{self.name}@{self.digest}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text
