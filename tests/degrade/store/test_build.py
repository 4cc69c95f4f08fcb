"""make-cdd11: schema, determinism, resumption, ingest of bad and odd files, exports."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from skyclear.cli.degrade import main
from skyclear.degrade.names import DEGRADATIONS, TIERS
from skyclear.degrade.store import FORMAT, BuildOptions, StoreError, build, open_store

from ...photos import write_corpus, write_photos

SIZE = 32


def _tree_digest(path: Path) -> dict[str, str]:
    """Every file under ``path`` and the SHA-1 of its bytes."""
    return {
        str(item.relative_to(path)): hashlib.sha1(item.read_bytes()).hexdigest()
        for item in sorted(path.rglob("*"))
        if item.is_file()
    }


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    write_photos(folder, count=3)
    return folder


def _options(src: Path, **changes: object) -> BuildOptions:
    settings: dict[str, object] = {"src": str(src), "size": SIZE, "test_fraction": 0.34}
    settings.update(changes)
    return BuildOptions(**settings)  # type: ignore[arg-type]


def test_schema(src: Path, tmp_path: Path) -> None:
    summary = build(_options(src, variants=2), tmp_path / "d.zarr")
    assert summary.complete and summary.samples == 3 * 11 * 2 == summary.written
    group = zarr.open_group(str(tmp_path / "d.zarr"), mode="r")
    attrs = dict(group.attrs)
    assert attrs["format"] == FORMAT and attrs["complete"] is True
    assert attrs["tiers"] == list(TIERS) and attrs["degradations"] == list(DEGRADATIONS)
    assert attrs["sources"] == ["p0.png", "p1.png", "sub/p2.png"] and attrs["skipped"] == []
    assert attrs["size"] == SIZE and attrs["order"] == "physical" and attrs["seed"] == 0
    assert attrs["depth_prior"] == "ground"
    expected = {
        "clean": ("uint8", (3, SIZE, SIZE, 3), (1, SIZE, SIZE, 3)),
        "degraded": ("uint8", (66, SIZE, SIZE, 3), (1, SIZE, SIZE, 3)),
        "masks": ("uint8", (66, 4, SIZE, SIZE), (1, 4, SIZE, SIZE)),
        "source": ("int32", (66,), (66,)),
        "tier": ("uint8", (66,), (66,)),
        "split": ("uint8", (66,), (66,)),
    }
    for name, (dtype, shape, chunks) in expected.items():
        array = group[name]
        assert (str(array.dtype), array.shape, array.chunks) == (dtype, shape, chunks), name
        assert array.metadata.dimension_names is not None, name
        assert "lz4" in str(array.compressors), name
    assert "depth" not in group
    source, tier, split = group["source"][:], group["tier"][:], group["split"][:]
    assert source.tolist() == [i for i in range(3) for _ in range(22)]
    assert tier.tolist()[:22] == [t for t in range(11) for _ in range(2)]
    for i in range(3):  # the split is by source photo, never by sample
        assert len(set(split[source == i].tolist())) == 1
    assert split.sum() == 22
    record = json.loads(str(group["params"][5]))
    assert record["tier"] == TIERS[2] and record["variant"] == 1 and "rain" in record["params"]
    # Masks are the degradations of the tier, and absent ones are all zero.
    masks = group["masks"][:]
    for m in range(66):
        name = TIERS[int(tier[m])]
        for c, degradation in enumerate(DEGRADATIONS):
            assert (masks[m, c].max() > 0) == (degradation in name.split("_")), (m, c)


def test_depth_is_stored_and_used(tmp_path: Path) -> None:
    src, depth_dir = tmp_path / "src", tmp_path / "depth"
    write_photos(src, count=2)
    (depth_dir / "sub").mkdir(parents=True)
    np.save(depth_dir / "p0.npy", np.full((48, 64), 3.0, np.float32))
    np.save(depth_dir / "sub" / "p1.depth.npy", np.full((48, 64), 30.0, np.float32))
    options = _options(src, tiers=("haze",), depth_dir=str(depth_dir))
    build(options, tmp_path / "d.zarr")
    group = open_store(tmp_path / "d.zarr")
    depth = group["depth"][:]
    assert depth.dtype == np.float16 and depth.shape == (2, SIZE, SIZE)
    assert np.allclose(depth[0], 3.0) and np.allclose(depth[1], 30.0)
    near, far = group["masks"][0, 1].mean(), group["masks"][1, 1].mean()
    assert far > near, "farther scenes are hazier"


@pytest.mark.parametrize("order", ["physical", "cdd11"])
def test_samples_replay_from_their_params(tmp_path: Path, order: str) -> None:
    """Each stored sample is ``Composite.apply`` of its clean photo and recorded params."""
    import torch
    from skyclear.degrade.compose import Composite
    from skyclear.degrade.io import from_numpy
    from skyclear.degrade.store.writer import to_uint8

    src, depth_dir = tmp_path / "src", tmp_path / "depth"
    write_photos(src, count=2)
    (depth_dir / "sub").mkdir(parents=True)
    np.save(depth_dir / "p0.npy", np.linspace(2.0, 40.0, 48 * 64, dtype=np.float32).reshape(48, 64))
    np.save(depth_dir / "sub" / "p1.npy", np.full((48, 64), 12.0, np.float32))
    build(_options(src, order=order, depth_dir=str(depth_dir)), tmp_path / "d.zarr")
    group = open_store(tmp_path / "d.zarr")
    composite = Composite(order=order)  # type: ignore[arg-type]
    for m in range(group["degraded"].shape[0]):
        source = int(group["source"][m])
        record = json.loads(str(group["params"][m]))
        params = {
            name: {key: torch.tensor([value]) for key, value in values.items()}
            for name, values in record["params"].items()
        }
        clean = from_numpy(group["clean"][source])
        depth = torch.from_numpy(group["depth"][source].astype(np.float32))[None, None]
        with torch.no_grad():
            replay = composite.apply(clean, record["tier"], params, depth=depth)
        assert np.array_equal(to_uint8(replay.image[0].permute(1, 2, 0)), group["degraded"][m])
        assert np.array_equal(to_uint8(replay.masks[0]), group["masks"][m])


def test_a_depth_map_of_another_size_is_an_error(tmp_path: Path, src: Path) -> None:
    """A photo without a depth file falls back (see test_depth_model.py); one whose file
    does not match it is refused, never stretched."""
    (tmp_path / "depth").mkdir()
    np.save(tmp_path / "depth" / "p0.npy", np.full((40, 64), 3.0, np.float32))
    with pytest.raises(ValueError, match="depth is 64x40 but the photo is 64x48"):
        build(_options(src, depth_dir=str(tmp_path / "depth")), tmp_path / "d.zarr")


@pytest.mark.slow
def test_identical_bytes_for_any_worker_count(tmp_path: Path) -> None:
    """In-process (torch on every core) and in two worker processes: the same bytes."""
    import torch

    src = tmp_path / "src"
    write_photos(src, count=3, height=96, width=128)
    options = _options(src, size=96, tiers=("low", "haze_rain", "low_haze_snow"))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        build(options, tmp_path / "one.zarr", workers=1)
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads, "the build restores the caller's threads"
    build(options, tmp_path / "two.zarr", workers=2)
    assert _tree_digest(tmp_path / "one.zarr") == _tree_digest(tmp_path / "two.zarr")


def test_concurrent_shards_prepare_once(src: Path, tmp_path: Path) -> None:
    import threading

    build(_options(src), tmp_path / "single.zarr")
    store = tmp_path / "sharded.zarr"
    errors: list[BaseException] = []

    def shard(k: int) -> None:
        try:
            build(_options(src), store, shard=(k, 3))
        except BaseException as error:  # collected and re-raised below
            errors.append(error)

    threads = [threading.Thread(target=shard, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert build(_options(src), store).written == 0
    assert _tree_digest(tmp_path / "single.zarr") == _tree_digest(store)
    assert not (tmp_path / "sharded.zarr.preparing").exists()


def test_foreign_things_at_out_are_not_deleted(src: Path, tmp_path: Path) -> None:
    other = zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    other.attrs["owner"] = "someone else"
    with pytest.raises(StoreError, match="not a skyclear store"):
        build(_options(src), tmp_path / "other.zarr")
    assert zarr.open_group(str(tmp_path / "other.zarr"), mode="r").attrs["owner"] == "someone else"
    (tmp_path / "file.zarr").write_text("x")
    for overwrite in (False, True):  # --overwrite replaces only skyclear stores
        with pytest.raises(StoreError, match="not a skyclear store"):
            build(_options(src), tmp_path / "file.zarr", overwrite=overwrite)
        assert (tmp_path / "file.zarr").read_text() == "x"


@pytest.mark.parametrize(
    ("count", "fraction", "tests"),
    [(5, 0.1, 1), (20, 0.1, 2), (10, 0.25, 3), (1, 0.5, 0), (4, 0.0, 0), (3, 0.9, 2)],
)
def test_test_split_size(count: int, fraction: float, tests: int) -> None:
    from skyclear.degrade.store.options import test_count

    assert test_count(count, fraction) == tests


def test_shards_fill_one_store_like_a_single_run(src: Path, tmp_path: Path) -> None:
    build(_options(src), tmp_path / "single.zarr")
    sharded = tmp_path / "sharded.zarr"
    for k in (1, 0):
        summary = build(_options(src), sharded, shard=(k, 2))
        assert not summary.complete
        with pytest.raises(StoreError, match="not complete"):
            open_store(sharded)
    final = build(_options(src), sharded)
    assert final.complete and final.written == 0
    assert _tree_digest(tmp_path / "single.zarr") == _tree_digest(sharded)


def test_kept_photos_are_used_when_readable_and_removed(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest keeps fitted photos for the writers; a kept file that cannot be read is
    replaced by decoding the photo again, and nothing is left beside the store."""
    from skyclear.degrade.store.kept import KeptPhotos

    build(_options(src), tmp_path / "kept.zarr")
    taken: list[bool] = []
    original_take = KeptPhotos.take

    def counting_take(self: KeptPhotos, relative: str) -> object:
        kept = original_take(self, relative)
        taken.append(kept is not None)
        return kept

    def torn_save(self: KeptPhotos, relative: str, fitted: object, shape: object) -> None:
        self._file(relative).write_bytes(b"PK\x03\x04 torn")

    monkeypatch.setattr(KeptPhotos, "take", counting_take)
    build(_options(src, seed=3), tmp_path / "used.zarr")
    assert taken == [True, True, True]
    monkeypatch.setattr(KeptPhotos, "save", torn_save)
    build(_options(src), tmp_path / "torn.zarr")
    assert taken[3:] == [False, False, False]
    assert _tree_digest(tmp_path / "torn.zarr") == _tree_digest(tmp_path / "kept.zarr")
    assert not list(tmp_path.glob(".*.photos-*"))


def test_stale_kept_photos_of_dead_runs_are_removed(src: Path, tmp_path: Path) -> None:
    import socket

    dead = _dead_pid()
    host = socket.gethostname()
    stale = tmp_path / f".d.zarr.photos-{host}-{dead}"
    alive = tmp_path / f".d.zarr.photos-{host}-{os.getppid()}"
    elsewhere = tmp_path / f".d.zarr.photos-another-host-{dead}"
    for folder in (stale, alive, elsewhere):
        folder.mkdir()
    build(_options(src), tmp_path / "d.zarr")
    assert not stale.exists() and alive.exists() and elsewhere.exists()


def test_a_different_command_is_refused(src: Path, tmp_path: Path) -> None:
    build(_options(src), tmp_path / "d.zarr")
    with pytest.raises(StoreError, match="differs in: seed"):
        build(_options(src, seed=1), tmp_path / "d.zarr")
    again = build(_options(src, seed=1), tmp_path / "d.zarr", overwrite=True)
    assert again.complete and open_store(tmp_path / "d.zarr").attrs["seed"] == 1
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a skyclear store"):
        build(_options(src), tmp_path / "plain")


def test_readers_refuse_incomplete_and_foreign_stores(src: Path, tmp_path: Path) -> None:
    build(_options(src), tmp_path / "d.zarr", shard=(0, 3))
    with pytest.raises(StoreError, match="not complete"):
        open_store(tmp_path / "d.zarr")
    group = zarr.open_group(str(tmp_path / "d.zarr"), mode="r+")
    group.attrs["format"] = "skyclear.cdd11/2"
    group.attrs["complete"] = True
    with pytest.raises(StoreError, match=r"is not 'skyclear\.cdd11/1'"):
        open_store(tmp_path / "d.zarr")


def _cli(*args: str) -> list[str]:
    code = "import sys; from skyclear.cli.degrade import main; sys.exit(main())"
    return [sys.executable, "-c", code, *args]


@pytest.fixture(scope="module")
def killable(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """Arguments of a run long enough to kill, and the store an uninterrupted run makes."""
    root = tmp_path_factory.mktemp("resume")
    write_photos(root / "src", count=4, height=96, width=128)
    args = [
        "make-cdd11",
        "--src",
        str(root / "src"),
        "--size",
        "96",
        "--tiers",
        "low,haze_snow,low_haze_rain",
    ]
    reference = root / "reference.zarr"
    subprocess.run(_cli(*args, "--out", str(reference)), check=True, capture_output=True)
    return args, reference


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["while preparing", "after the first photo"])
def test_resume_after_sigkill_is_byte_identical(
    killable: tuple[list[str], Path], tmp_path: Path, moment: str
) -> None:
    args, reference = killable
    store = tmp_path / "killed.zarr"
    marker = store / ("zarr.json" if moment == "while preparing" else "params/c.0")
    process = subprocess.Popen(_cli(*args, "--out", str(store)), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    with pytest.raises(StoreError):
        open_store(store)
    subprocess.run(_cli(*args, "--out", str(store)), check=True, capture_output=True)
    assert _tree_digest(store) == _tree_digest(reference)
    assert not list(tmp_path.glob(".killed.zarr.photos-*")), "the killed run's photos stay"


def test_bad_and_odd_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    expected = write_corpus(src, tmp_path / "outside")
    result = CliRunner().invoke(
        main, ["make-cdd11", "--src", str(src), "--out", str(tmp_path / "d.zarr"),
               "--size", str(SIZE), "--tiers", "low"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    group = open_store(tmp_path / "d.zarr")
    skipped = {item["file"]: item["reason"] for item in group.attrs["skipped"]}
    for name, reason in expected.items():
        if reason:
            assert reason in skipped[name], (name, skipped.get(name))
            assert f"skipped {name}" in result.output
        else:
            assert name in group.attrs["sources"], name
    clean = {name: group["clean"][i] for i, name in enumerate(group.attrs["sources"])}
    assert np.all(clean["rgba.png"][:, :8] == 255), "transparency is composited on white"
    grey = clean["grey.png"]
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    sixteen = clean["sixteen.png"][..., 0].astype(int)
    assert sixteen.max() > 200 and sixteen.min() < 60, "16-bit scaled, not clipped"
    assert len(np.unique(sixteen)) > 20
    # The EXIF-rotated photo is upright: its horizontal gradient became vertical.
    rotated = clean["rotated.jpg"].astype(float)[..., 0]
    assert abs(np.diff(rotated, axis=0).mean()) > abs(np.diff(rotated, axis=1).mean())


def test_no_usable_photo_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("x")
    result = CliRunner().invoke(
        main, ["make-cdd11", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "d.zarr")]
    )
    assert result.exit_code != 0 and "no usable photo" in result.output
    assert not (tmp_path / "d.zarr").exists()


def test_cli_summary_and_bad_options(src: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "d.zarr"
    ok = runner.invoke(main, ["make-cdd11", "--src", str(src), "--out", str(out), "--size", "32",
                              "--tiers", "low,haze_rain"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "6 samples from 3 photos, complete" in ok.output and "samples/s" in ok.output
    # The whole run's rate and, over a part of its time, synthesis's own.
    found = re.search(r"in ([\d.]+) s \(([\d.]+) samples/s; synthesis ([\d.]+) s, "
                      r"([\d.]+) samples/s\)", ok.output)  # fmt: skip
    assert found is not None, ok.output
    seconds, rate, synthesis, synthesis_rate = map(float, found.groups())
    assert 0 <= synthesis <= seconds and synthesis_rate >= rate > 0
    bad = runner.invoke(
        main, ["make-cdd11", "--src", str(src), "--out", str(out), "--tiers", "fog"]
    )
    assert bad.exit_code != 0 and "unknown tiers" in bad.output
    shard = runner.invoke(
        main, ["make-cdd11", "--src", str(src), "--out", str(out), "--shard", "3/2"]
    )
    assert shard.exit_code != 0 and "0 <= K < N" in shard.output


@pytest.mark.parametrize("shape", [(40, 64), (64, 40), (48, 48), (32, 90)])
def test_fitting_resamples_only_the_centre_crop(shape: tuple[int, int]) -> None:
    """The fit samples where resizing the whole photo and cropping its centre would (to
    the rounding of Pillow's fixed-point passes), for photos and depth maps alike."""
    from PIL import Image
    from skyclear.degrade.store.ingest import fit_depth, fit_photo

    height, width = shape
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.linspace(0, 150, height), np.linspace(0, 100, width))
    photo = (ramp[..., None] + rng.integers(0, 6, (height, width, 3))).astype(np.uint8)
    scale = SIZE / min(height, width)
    resized = (max(SIZE, round(width * scale)), max(SIZE, round(height * scale)))
    left, top = (resized[0] - SIZE) // 2, (resized[1] - SIZE) // 2
    crop = (left, top, left + SIZE, top + SIZE)
    whole = np.asarray(Image.fromarray(photo).resize(resized, Image.Resampling.LANCZOS).crop(crop))
    fitted = fit_photo(photo, SIZE)
    assert fitted.shape == (SIZE, SIZE, 3)
    assert np.abs(fitted.astype(int) - whole).max() <= 2
    depth = ramp.astype(np.float32)
    whole_depth = Image.fromarray(depth, mode="F").resize(resized, Image.Resampling.BILINEAR)
    np.testing.assert_allclose(
        fit_depth(depth, SIZE), np.asarray(whole_depth.crop(crop)), atol=1e-3
    )


def test_sample_chunks_are_the_files_zarr_writes_and_reads(tmp_path: Path) -> None:
    """Chunks written straight to their files equal zarr's own, byte for byte, and read
    back as zarr reads them (the fill value where none was written); an array with other
    chunks goes through zarr."""
    from skyclear.degrade.store.chunks import SampleChunks
    from skyclear.degrade.store.format import compressor

    group = zarr.open_group(store=str(tmp_path / "g.zarr"), mode="w", zarr_format=3)

    def array(name: str, chunks: tuple[int, ...]) -> zarr.Array:
        flat = {"name": "default", "separator": "."}
        return group.create_array(
            name, shape=(5, 4, 6, 3), chunks=chunks, dtype="uint8", compressors=compressor(),
            chunk_key_encoding=flat,  # type: ignore[arg-type]
        )  # fmt: skip

    rows = np.random.default_rng(0).integers(0, 256, (3, 4, 6, 3), dtype=np.uint8)
    rows[1] = 0  # a chunk equal to the fill value is written all the same
    direct, through_zarr = SampleChunks(array("direct", (1, 4, 6, 3))), array("zarr", (1, 4, 6, 3))
    assert direct.folder is not None
    direct.write(1, rows)
    through_zarr.with_config({"write_empty_chunks": True})[1:4] = rows
    written = _tree_digest(tmp_path / "g.zarr" / "direct")
    assert written == _tree_digest(tmp_path / "g.zarr" / "zarr")
    assert sorted(written) == ["c.1.0.0.0", "c.2.0.0.0", "c.3.0.0.0", "zarr.json"]
    np.testing.assert_array_equal(direct.array[1:4], rows)
    with pytest.raises(ValueError, match="uint8 of shape"):
        direct.write(0, rows.astype(np.float32))
    reader = SampleChunks(zarr.open_group(store=str(tmp_path / "g.zarr"), mode="r")["zarr"])
    assert reader.folder is not None
    for index in range(5):  # rows 0 and 4 were never written
        np.testing.assert_array_equal(reader.read(index), through_zarr[index])
    paired = SampleChunks(array("paired", (2, 4, 6, 3)))
    assert paired.folder is None
    paired.write(1, rows)
    np.testing.assert_array_equal(paired.array[1:4], rows)
    np.testing.assert_array_equal(paired.read(2), rows[1])
    nested = group.create_array("nested", shape=(5, 4, 6, 3), chunks=(1, 4, 6, 3),
                                dtype="uint8", compressors=compressor())  # fmt: skip
    nested[1:4] = rows  # keys c/1/0/0/0, as stores were once written
    np.testing.assert_array_equal(SampleChunks(nested).read(3), rows[2])
    SampleChunks(nested).write(4, rows[:1])  # resuming such a store makes its folders
    np.testing.assert_array_equal(nested[4], rows[0])


def _dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    return int(finished.stdout)


def test_completion_removes_half_written_chunks(src: Path, tmp_path: Path) -> None:
    """A killed writer's temporary chunk files go when the store is completed."""
    import socket

    reference = tmp_path / "reference.zarr"
    build(_options(src), reference)
    store = tmp_path / "resumed.zarr"
    build(_options(src), store, shard=(0, 3))
    host = socket.gethostname()
    (store / "degraded" / f"c.20.0.0.0~{host}~{_dead_pid()}.partial").write_bytes(b"half")
    (store / "masks" / "c.20.0.0.0f3a.partial").write_bytes(b"zarr's own")
    build(_options(src), store)
    assert _tree_digest(store) == _tree_digest(reference)


def test_partial_files_of_live_or_foreign_writers_stay(tmp_path: Path) -> None:
    import socket

    from skyclear.degrade.store.chunks import remove_partial_files

    host = socket.gethostname()
    names = {
        f"c.1.0.0.0~{host}~{_dead_pid()}.partial": False,
        f"c.2.0.0.0~{host}~{os.getpid()}.partial": True,  # a live process's write
        f"c.3.0.0.0~another-host~{_dead_pid()}.partial": True,  # cannot be checked here
        "c.4.0.0.0a1b2.partial": False,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"")
    remove_partial_files(tmp_path)
    assert {name: (tmp_path / name).exists() for name in names} == names


def test_the_depth_prior_is_chosen_and_recorded(src: Path, tmp_path: Path) -> None:
    """``--depth-prior uniform``: every haze mask is flat (one distance per sample), and
    the store says which prior made it; ``flat`` draws masks that vary down the rows."""
    runner = CliRunner()
    made = {}
    for prior in ("uniform", "flat"):
        out = tmp_path / f"{prior}.zarr"
        args = ["make-cdd11", "--src", str(src), "--out", str(out), "--size", str(SIZE),
                "--tiers", "haze", "--depth-prior", prior]  # fmt: skip
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        group = zarr.open_group(str(out), mode="r")
        assert group.attrs["depth_prior"] == prior
        made[prior] = group["masks"][:, 1].astype(float)
    spread = made["uniform"].max(axis=(1, 2)) - made["uniform"].min(axis=(1, 2))
    assert spread.max() <= 1, "uniform haze: one opacity per sample (up to rounding)"
    rows = made["flat"].mean(axis=2)
    assert (rows[:, 0] - rows[:, -1]).min() > 20, "flat ground: hazier at the top"
    bad = runner.invoke(main, ["make-cdd11", "--src", str(src), "--out", str(tmp_path / "x"),
                               "--depth-prior", "sky"])  # fmt: skip
    assert bad.exit_code == 2 and "--depth-prior" in bad.output


def test_pending_sources_reads_markers_in_blocks_and_finds_torn_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyclear.degrade.store import writer

    src = tmp_path / "src"
    write_photos(src, count=5)
    store = tmp_path / "d.zarr"
    build(_options(src), store)
    (store / "params" / "c.1").write_bytes(b"torn by a kill")  # the block fails to decode
    (store / "params" / "c.3").unlink()  # never written: read as empty rows
    one_by_one: list[int] = []
    source_done = writer._source_done

    def counted(params: object, index: int, per_source: int) -> bool:
        one_by_one.append(index)
        return source_done(params, index, per_source)

    monkeypatch.setattr(writer, "_source_done", counted)
    monkeypatch.setattr(writer, "_MARKERS", 2)
    assert writer.pending_sources(store) == [1, 3]
    assert one_by_one == [0, 1]  # only the block with the torn chunk, source by source
    monkeypatch.setattr(writer, "_MARKERS", 256)
    assert writer.pending_sources(store) == [1, 3]


def test_the_synthesis_time_spans_the_writing_and_not_the_ingest(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyclear.degrade.store import writer

    write, ingest = writer._Writer.write, writer.Workers.ingest

    def slow_write(self: Any, index: int) -> int:
        time.sleep(0.1)
        return write(self, index)

    def slow_ingest(self: Any, *args: Any) -> Any:
        time.sleep(0.5)
        return ingest(self, *args)

    monkeypatch.setattr(writer._Writer, "write", slow_write)
    monkeypatch.setattr(writer.Workers, "ingest", slow_ingest)
    summary = build(_options(src, tiers=("haze",)), tmp_path / "d.zarr")
    assert summary.written == 3 and summary.synthesis_seconds >= 3 * 0.1
    assert summary.seconds - summary.synthesis_seconds >= 0.5
    assert summary.synthesis_samples_per_second == 3 / summary.synthesis_seconds
