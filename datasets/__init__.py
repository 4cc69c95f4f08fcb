"""skyclear.datasets: torch datasets over skyclear stores and the CDD-11 release.

All four yield the same sample contract (see ``Sample``): ``degraded``, ``clean``,
``masks``, ``tier``, ``presence`` and ``has_masks``.
"""

from ._sample import Crop, Sample, as_float
from .folder import CDD11Folder
from .online import CleanCrop, CleanCrops, OnlineSynthesis, degrade_batch
from .stores import CDD11H5, CDD11Zarr
from .unpaired import DegradedPhotos, Unpaired

__all__ = [
    "CDD11H5",
    "CDD11Folder",
    "CDD11Zarr",
    "CleanCrop",
    "CleanCrops",
    "Crop",
    "DegradedPhotos",
    "OnlineSynthesis",
    "Sample",
    "Unpaired",
    "as_float",
    "degrade_batch",
]
