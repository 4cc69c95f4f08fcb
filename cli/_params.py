"""Parameter types that several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from skyclear.degrade.location import is_url, location


class PathOrURL(click.ParamType):
    """A local path, checked as ``click.Path(**checks)`` checks it, or a store's URL
    (``s3://bucket/data.zarr``: ``skyclear.degrade.location``), kept as a string (a
    ``Path`` would fold its ``//``)."""

    name = "path"

    def __init__(self, **checks: Any) -> None:
        self.path = click.Path(path_type=Path, **checks)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and is_url(value):
            try:
                return location(value)
            except ValueError as error:
                self.fail(str(error), param, ctx)
        return self.path.convert(value, param, ctx)
