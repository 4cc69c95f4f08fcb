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

__all__ = [
    "Location",
    "identity",
    "is_url",
    "location",
    "url_filesystem",
    "url_objects",
]

Location = Path | str  # a str is always a URL (``location``)

_PROTOCOL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def is_url(value: str | os.PathLike[str]) -> bool:
    """True for ``PROTOCOL://...`` other than ``file://``, and for fsspec's chained URLs
    (``simplecache::s3://...``)."""
    text = os.fspath(value)
    if "::" in text and "://" in text:
        return True
    found = _PROTOCOL.match(text)
    return found is not None and found.group(1).lower() not in ("file", "local")


def location(value: str | os.PathLike[str]) -> Location:
    """A URL as a string without a trailing slash, anything else as a ``Path``.

    Raises:
        ValueError: a URL with nothing after its protocol (``s3://``).
    """
    text = os.fspath(value)
    if is_url(text):
        if not text.rsplit("://", 1)[1].strip("/"):
            raise ValueError(f"{text!r} names no place; give one, such as s3://bucket/data.zarr")
        return text.rstrip("/")
    if _PROTOCOL.match(text):  # file://PATH
        return Path(text.split("://", 1)[1])
    return Path(text)


def url_filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it (no trailing slash).

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
        fs, root = url_to_fs(url)
    except (ImportError, ValueError) as error:
        raise ImportError(f"{url}: cannot open this protocol ({error})") from error
    return fs, str(root).rstrip("/")


def _listed(names: list[str], root: str) -> list[str]:
    """``names`` relative to ``root``, without folder markers (empty or ``.../`` keys that
    consoles create) and without ``root`` itself, sorted."""
    relative = (name[len(root) + 1 :] for name in names if name.startswith(root + "/"))
    return sorted(name for name in relative if name and not name.endswith("/"))


def _listing(url: str, call: Any) -> Any:
    """``call()``, its failures as ``OSError`` naming ``url`` (missing credentials raise
    botocore's own types, for one)."""
    try:
        return call()
    except (OSError, ImportError):
        raise
    except Exception as error:
        raise OSError(f"{url}: {type(error).__name__}: {error}") from error


def url_objects(url: str) -> list[str]:
    """The keys of every object under ``url``, at any depth, relative to it, sorted."""
    fs, root = url_filesystem(url)
    fs.invalidate_cache()  # a key's parent listing, cached earlier, would hide new ones
    return _listed(_listing(url, lambda: fs.find(root)), root)


def identity(value: str | os.PathLike[str]) -> str:
    """What names the same data however it was given: a URL as ``location`` keeps it, a
    path made absolute with symlinks resolved (records and comparisons use this)."""
    where = location(value)
    return where if isinstance(where, str) else str(where.resolve())
