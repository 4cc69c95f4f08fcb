"""Where a store lives: a local folder, or a URL of an object store that fsspec opens.

A URL (``s3://bucket/data.zarr``, ``gs://...``, any protocol with an fsspec
implementation installed: ``pip install 'skyclear[s3]'`` for S3) stays a string all the
way to zarr, which opens it through fsspec; credentials and endpoints come from the
filesystem's usual configuration (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``,
``~/.aws``). ``file://`` URLs are plain paths. Everything else is a ``Path``.

An object store has no folders and no exclusive create: what lies "at" a URL is every
object under its prefix, and there is no lock file to take (``prepare.prepare_once``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["Location", "identity", "is_url", "location", "url_filesystem", "url_objects"]

Location = Path | str  # a str is always a URL (``location``)

_PROTOCOL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def is_url(value: str | os.PathLike[str]) -> bool:
    """True for ``PROTOCOL://...`` other than ``file://``."""
    found = _PROTOCOL.match(os.fspath(value))
    return found is not None and found.group(1).lower() not in ("file", "local")


def location(value: str | os.PathLike[str]) -> Location:
    """A URL as a string without a trailing slash, anything else as a ``Path``."""
    text = os.fspath(value)
    if is_url(text):
        return text.rstrip("/")
    if _PROTOCOL.match(text):  # file://PATH
        return Path(text.split("://", 1)[1])
    return Path(text)


def url_filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it.

    Raises:
        ImportError: fsspec, or the protocol's implementation, is not installed; the
            message says what to install.
    """
    try:
        from fsspec.core import url_to_fs
    except ImportError as error:
        raise ImportError(
            f"{url}: a store at a URL needs fsspec: pip install 'skyclear[s3]' (S3) or "
            "fsspec with the implementation of its protocol"
        ) from error
    try:
        return url_to_fs(url)
    except (ImportError, ValueError) as error:
        raise ImportError(f"{url}: cannot open this protocol ({error})") from error


def url_objects(url: str) -> list[str]:
    """The keys of every object under ``url``, relative to it, sorted."""
    fs, root = url_filesystem(url)
    root = root.rstrip("/")
    # Every listing this filesystem cached may miss objects written since (by other
    # processes too): the parent's of a key, which a later read of that key consults.
    fs.invalidate_cache()
    keys = fs.find(root)
    return sorted(key[len(root) + 1 :] for key in keys if key.startswith(root + "/"))


def identity(value: str | os.PathLike[str]) -> str:
    """What names the same data however it was given: a URL as ``location`` keeps it, a
    path made absolute with symlinks resolved (records and comparisons use this)."""
    where = location(value)
    return where if isinstance(where, str) else str(where.resolve())
