"""The package index, read as data: where a requirement's source archive is, fetched without running it.

Used only when a requirement has no wheel for the image's Python: its source archive is located
through the index's JSON simple API (PEP 691), downloaded with its sha256 checked, and handed to a
builder that runs away from the host. pip itself would prepare the archive's metadata on the host
(run its setup.py) even to download it — code from a package an untrusted spec names.
"""

from __future__ import annotations

import hashlib
import os
import ssl
from pathlib import Path

import httpx
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename

MAX_SDIST_BYTES = 50 * 1024 * 1024
JSON_API = "application/vnd.pypi.simple.v1+json"


def index_url() -> str:
    """The index pip uses on this machine (PIP_INDEX_URL), or the public one."""
    return (os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")


def _client() -> httpx.Client:
    # The machine's trust store (and pip's own CA bundle setting), as pip would verify the index.
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    return httpx.Client(verify=context, timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)


def download_sdist(requirement: str, dest: Path, client: httpx.Client | None = None) -> Path | None:
    """The newest source archive that satisfies ``requirement``, in ``dest``; None when there is none."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return None
    http = client or _client()
    try:
        listing = http.get(f"{index_url()}/{canonicalize_name(req.name)}/", headers={"Accept": JSON_API})
        if listing.status_code != 200:
            return None
        best: tuple[object, dict[str, object]] | None = None
        for entry in listing.json().get("files", []):
            filename = str(entry.get("filename", ""))
            if entry.get("yanked") or not filename.endswith((".tar.gz", ".zip")):
                continue
            try:
                _, version = parse_sdist_filename(filename)
            except InvalidSdistFilename:
                continue
            if req.specifier.contains(version) and (best is None or version > best[0]):  # type: ignore[operator]
                best = (version, entry)
        if best is None:
            return None
        entry = best[1]
        with http.stream("GET", str(entry["url"])) as response:
            if response.status_code != 200:
                return None
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_SDIST_BYTES:
                    return None
    except (httpx.HTTPError, ValueError):
        return None
    hashes = entry.get("hashes")
    expected = hashes.get("sha256") if isinstance(hashes, dict) else None
    if expected and hashlib.sha256(data).hexdigest() != expected:
        return None
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / Path(str(entry["filename"])).name
    path.write_bytes(bytes(data))
    return path
