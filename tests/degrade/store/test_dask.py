"""make-cdd11 on a dask.distributed cluster: the bytes of a local build, resumable."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from skyclear.cli.degrade import main
from skyclear.degrade.store import BuildOptions, build, open_store, writer

from ...photos import write_photos
from .test_build import SIZE, _tree_digest

pytest.importorskip("distributed")
from distributed import WorkerPlugin


def _options(src: Path) -> BuildOptions:
    return BuildOptions(src=str(src), size=SIZE, test_fraction=0.34,
                        tiers=("haze", "low_rain", "low_haze_snow"))  # fmt: skip


@pytest.mark.slow
def test_a_local_cluster_writes_the_bytes_of_a_local_build_and_resumes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_photos(src, count=4)
    build(_options(src), tmp_path / "here.zarr")
    summary = build(_options(src), tmp_path / "dask.zarr", scheduler="local:2")
    assert summary.complete and summary.written == 4 * 3
    assert _tree_digest(tmp_path / "dask.zarr") == _tree_digest(tmp_path / "here.zarr")
    # Interrupted after half the photos (as a shard leaves it), finished on the cluster.
    half = tmp_path / "half.zarr"
    build(_options(src), half, shard=(0, 2))
    resumed = build(_options(src), half, scheduler="local:2")
    assert resumed.complete and resumed.written == 2 * 3  # only the photos missing
    assert _tree_digest(half) == _tree_digest(tmp_path / "here.zarr")
    assert open_store(half).attrs["complete"] is True


class _KillOnce(WorkerPlugin):  # type: ignore[misc]
    """The first worker of the cluster to start a task exits a moment later, as a worker
    killed mid-task does (no cleanup); the marker file holds its pid."""

    name = "kill-once"

    def __init__(self, marker: str, delay: float) -> None:
        self.marker, self.delay = marker, delay

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "executing" or "_work" not in str(key):
            return
        try:
            marker = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # killed once already
        os.write(marker, str(os.getpid()).encode())
        os.close(marker)
        threading.Timer(self.delay, os._exit, (1,)).start()


@pytest.mark.slow
def test_a_worker_killed_mid_task_loses_and_doubles_nothing(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    src = tmp_path / "src"
    write_photos(src, count=6, height=96, width=112)
    options = BuildOptions(src=str(src), size=96, test_fraction=0.34,
                           tiers=("haze", "low_rain", "low_haze_snow"))  # fmt: skip
    build(options, tmp_path / "here.zarr")
    marker = tmp_path / "killed"
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                     silence_logs=50) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        client.register_plugin(_KillOnce(str(marker), delay=0.01))
        summary = build(options, tmp_path / "dask.zarr", scheduler=cluster.scheduler_address)
    killed = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)  # that worker is gone; its task ran again on another
    assert summary.complete and summary.written == 6 * 3
    assert _tree_digest(tmp_path / "dask.zarr") == _tree_digest(tmp_path / "here.zarr")


def test_bad_schedulers_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_photos(src, count=2)
    for args, message in (
        (["--scheduler", "local:0"], "N >= 1"),
        (["--scheduler", "banana"], "local:N or a scheduler address"),
        (["--scheduler", "local:2", "--workers", "2"], "drop --workers and --shard"),
    ):
        out = tmp_path / "d.zarr"
        result = CliRunner().invoke(main, ["make-cdd11", "--src", str(src), "--out", str(out),
                                           "--size", str(SIZE), *args])  # fmt: skip
        assert result.exit_code == 2 and message in result.output, result.output
        assert not out.exists()


def _in_main_heap() -> bool:
    """Whether this thread's small allocations come from the process's main arena, not
    from one of its own: glibc marks a chunk of another arena in its size field."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block = libc.malloc(1000)
    non_main_arena = 0x4
    size_field = ctypes.c_size_t.from_address(block - ctypes.sizeof(ctypes.c_size_t)).value
    libc.free(block)
    return not size_field & non_main_arena


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's arenas")
@pytest.mark.parametrize("environ", ["ours", "none"])
def test_a_local_cluster_runs_its_tasks_on_the_kept_heap(
    environ: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A task thread with an arena of its own gives its memory back to the kernel as soon
    # as it is free: the setup's kept heap would not hold (twice the page faults).
    # (PYTHONHASHSEED: one a cluster's start adds to the caller's environment, see below.)
    for name in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES", "PYTHONHASHSEED"):
        monkeypatch.delenv(name, raising=False)
    if environ == "none":
        monkeypatch.setattr(writer, "WORKER_ENVIRON", {})
    before = dict(os.environ)
    with writer.DaskWorkers("local:1") as pool:
        on_main_heap = pool.client.submit(_in_main_heap, pure=False).result()
        # What the caller sets meanwhile stays, a variable the start added included.
        changed = "PYTHONHASHSEED"
        assert changed in set(os.environ) - set(before)
        monkeypatch.setenv(changed, "the caller's")
        monkeypatch.setenv("SKYCLEAR_CALLERS_OWN", "1")
    assert on_main_heap == (environ == "ours")
    # The workers' environment is theirs alone.
    assert dict(os.environ) == {**before, "SKYCLEAR_CALLERS_OWN": "1", changed: "the caller's"}


@pytest.mark.slow
def test_a_cluster_that_fails_to_start_is_closed_and_leaves_no_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import distributed

    def refused(*_: Any, **__: Any) -> None:
        raise RuntimeError("refused")

    clusters: list[Any] = []
    local_cluster = distributed.LocalCluster

    def kept(*args: Any, **kwargs: Any) -> Any:
        clusters.append(local_cluster(*args, **kwargs))
        return clusters[-1]

    monkeypatch.setattr(distributed.Client, "register_plugin", refused)
    monkeypatch.setattr(distributed, "LocalCluster", kept)
    before = dict(os.environ)
    with pytest.raises(RuntimeError, match="refused"), writer.DaskWorkers("local:1"):
        pass
    assert dict(os.environ) == before
    assert [cluster.status.name for cluster in clusters] == ["closed"]
