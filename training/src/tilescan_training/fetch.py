"""Files that ``params.yaml`` names by URL or path, made local and checked against an expected sha256.

Anything can sit behind a web address, so an http(s) URL must come with the sha256 of the file it serves;
``file://`` URLs and local paths may omit it, and are checked when it is given. Other schemes are refused.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

REMOTE_SCHEMES = ("http", "https")
TIMEOUT_S = 60  # per blocking socket operation, not for the whole download


class FetchError(ValueError):
    """The source cannot be fetched, or is not the file its sha256 promises; the message says which."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(source: str, sha256: str, into: Path) -> Path:
    """The local path of ``source`` (downloaded into the folder ``into`` if remote), its sha256 checked."""
    scheme = urlsplit(source).scheme if "://" in source else ""
    if scheme in REMOTE_SCHEMES:
        if not sha256:
            raise FetchError(f"{source}: an http(s) source needs the sha256 of the file it serves")
        path = into / (Path(urlsplit(source).path).name or "download")
        try:
            with urllib.request.urlopen(source, timeout=TIMEOUT_S) as response, open(path, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as err:  # URLError, HTTPError, timeouts, resets
            raise FetchError(f"{source}: download failed ({err})") from None
    elif scheme == "file":
        path = Path(urllib.request.url2pathname(urlsplit(source).path))
    elif scheme:
        raise FetchError(f"{source}: scheme {scheme!r} is not supported; use http(s)://, file:// or a path")
    else:
        path = Path(source)
    if sha256:
        if not path.is_file():
            raise FetchError(f"{source}: not a file, so its sha256 cannot be checked")
        if (got := sha256_of(path)) != sha256.lower():
            raise FetchError(f"{source}: sha256 is {got}, expected {sha256}")
    return path
