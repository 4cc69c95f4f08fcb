"""CDD-11-style datasets in a Zarr store: ingest, deterministic synthesis, export.

The store format ``skyclear.cdd11/1`` is described normatively in docs/format.md; the
constants and the checked opener live in ``format``.
"""

from .build import BuildOptions, BuildSummary, NoUsablePhotoError, build
from .export import export_folder, export_hdf5, is_export
from .format import FORMAT, StoreError, is_store, open_store, presence_of
from .ingest import Skipped, find_sources

__all__ = [
    "FORMAT",
    "BuildOptions",
    "BuildSummary",
    "NoUsablePhotoError",
    "Skipped",
    "StoreError",
    "build",
    "export_folder",
    "export_hdf5",
    "find_sources",
    "is_export",
    "is_store",
    "open_store",
    "presence_of",
]
