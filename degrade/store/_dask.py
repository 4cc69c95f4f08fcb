"""What make-cdd11 installs on the workers of a Dask cluster (imported with ``--scheduler``
only: ``distributed`` is an optional dependency)."""

from __future__ import annotations

from typing import Any

from distributed import WorkerPlugin

from .writer import _one_thread_kept_heap, _single_thread

__all__ = ["PoolSetup"]


class PoolSetup(WorkerPlugin):
    """Set every worker up as the pool's are, those that join later included (the
    replacement of a worker that died): one thread, a heap that keeps freed memory, and,
    on a cluster of the command's own (``quick_exit``), no unwinding at exit."""

    name = "skyclear-make-cdd11"

    def __init__(self, quick_exit: bool) -> None:
        self.quick_exit = quick_exit

    def setup(self, worker: Any) -> None:
        (_single_thread if self.quick_exit else _one_thread_kept_heap)()
