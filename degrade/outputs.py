"""Where a command may write: never over its inputs, never over what skyclear did not write.

Every command that writes a path named by a person (a store, an export, a run folder, a
report) checks it here first. The rule is the same everywhere: the output must not be an
input, hold one or lie inside one (compared after resolving symlinks, so a link that leads
back into an input counts), and whatever already exists there must be empty or
recognisably skyclear's own output of the same kind. Only then may the command replace
or reuse it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from .location import is_url

__all__ = ["OutputError", "check_apart", "check_output", "replace_text"]


class OutputError(ValueError):
    """An output path skyclear must not write to; the message names the path and why."""


def _shown(path: Path, resolved: Path) -> str:
    """``path``, and where it leads when symlinks or ``..`` make that another place."""
    return str(path) if path.absolute() == resolved else f"{path} (that is, {resolved})"


def check_apart(out: Path, inputs: Iterable[Path | str | None]) -> None:
    """Refuse ``out`` if it is one of ``inputs``, holds one, or lies inside one.

    Paths are compared after resolving symlinks and ``..``, whether they exist yet or not;
    ``None`` entries (an optional input not given) and URLs (a store in an object store,
    ``skyclear.degrade.location``), which no local path can meet, are ignored.

    Raises:
        OutputError: naming the output, the input and how they meet.
    """
    target = Path(out).resolve()
    for source in inputs:
        if source is None or is_url(source):
            continue
        origin = Path(source).resolve()
        if target == origin:
            relation = "is"
        elif target.is_relative_to(origin):
            relation = "lies inside"
        elif origin.is_relative_to(target):
            relation = "holds"
        else:
            continue
        raise OutputError(
            f"{_shown(Path(out), target)} {relation} the input {_shown(Path(source), origin)}; "
            "write the output somewhere else"
        )


def check_output(
    out: Path,
    *,
    inputs: Iterable[Path | str | None] = (),
    is_ours: Callable[[Path], bool],
    kind: str = "skyclear's own output",
) -> None:
    """Refuse to write ``out`` unless that can destroy nothing skyclear did not write.

    ``out`` passes when it does not exist, is an empty folder, or ``is_ours(out)`` says it
    holds an earlier output of this kind (following a symlink at ``out`` to what it leads
    to). It is refused when it meets one of ``inputs`` (see ``check_apart``), when it is a
    symlink that leads nowhere, and when it holds anything else: a file or folder with
    content that ``is_ours`` does not recognise. Nothing is written or deleted here.

    Args:
        out: the path a command is about to write, replace or reuse.
        inputs: the paths the command reads (``None`` for an optional one not given).
        is_ours: recognises an earlier output of this kind at an existing path.
        kind: what ``is_ours`` recognises, for the message (e.g. "a skyclear store").

    Raises:
        OutputError: the reason, naming the path.

    Example:
        >>> check_output(Path("out.h5"), inputs=[Path("photos")], is_ours=lambda path: False)
    """
    out = Path(out)
    check_apart(out, inputs)
    if not out.exists():
        if out.is_symlink():
            raise OutputError(
                f"{out} is a symlink to {out.readlink()}, which does not exist; remove the link "
                "or choose another output"
            )
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    if is_ours(out):
        return
    what = "folder" if out.is_dir() else "file"
    raise OutputError(
        f"{out} is a {what} that is not {kind}; skyclear replaces only what it wrote itself, "
        "so choose another output (or move it away yourself)"
    )


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file beside it, renamed over
    it): a kill leaves the previous file or the new one, never half of one. The temporary
    file is new (exclusive create, a random name): nothing already there, a symlink
    included, is written through."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
