"""Ingest: every skipped file is named with its reason, and the per-run pixel limit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from skyclear.cli.degrade import main
from skyclear.degrade.store import BuildOptions, NoUsablePhotoError, StoreError, build, open_store

from ...photos import photo, write_photos

PIXELS = 48 * 64  # of each photo write_photos makes


def _tree(path: Path) -> dict[str, str]:
    return {
        str(item.relative_to(path)): hashlib.sha1(item.read_bytes()).hexdigest()
        for item in sorted(path.rglob("*"))
        if item.is_file()
    }


def _make(src: Path, out: Path, *extra: str) -> list[str]:
    return ["make-cdd11", "--src", str(src), "--out", str(out), "--size", "16", "--tiers", "low",
            *extra]  # fmt: skip


def test_no_usable_photo_names_every_skipped_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("x")
    Image.fromarray(photo(0, 8, 8)).save(src / "small.png")
    result = CliRunner().invoke(main, _make(src, tmp_path / "d.zarr"))
    assert result.exit_code == 1
    assert f"no usable photo in {src} (2 files skipped)" in result.output
    assert "skipped a.txt: not an image" in result.output
    assert "skipped small.png: too small: 8x8" in result.output
    assert not (tmp_path / "d.zarr").exists()
    with pytest.raises(NoUsablePhotoError) as caught:
        build(BuildOptions(src=str(src), size=16), tmp_path / "d.zarr")
    assert isinstance(caught.value, StoreError)
    assert [(item.file, item.reason[:12]) for item in caught.value.skipped] == [
        ("a.txt", "not an image"),
        ("small.png", "too small: 8"),
    ]
    assert "a.txt: not an image" in str(caught.value), "the message lists them too"


def test_max_pixels_refuses_and_admits_a_photo(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_photos(src, count=2)
    runner = CliRunner()
    low = runner.invoke(main, _make(src, tmp_path / "low.zarr", "--max-pixels", str(PIXELS - 1)))
    assert low.exit_code == 1 and "no usable photo" in low.output
    assert f"skipped p0.png: decompression bomb: more than {PIXELS - 1} pixels" in low.output
    high = runner.invoke(main, _make(src, tmp_path / "high.zarr", "--max-pixels", str(PIXELS)))
    assert high.exit_code == 0, high.output
    assert open_store(tmp_path / "high.zarr").attrs["sources"] == ["p0.png", "sub/p1.png"]
    bad = runner.invoke(main, _make(src, tmp_path / "bad.zarr", "--max-pixels", "0"))
    assert bad.exit_code == 2 and "--max-pixels" in bad.output


def test_max_pixels_reaches_the_ingest_workers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_photos(src, count=2)
    options = BuildOptions(src=str(src), size=16, tiers=("low",), max_pixels=PIXELS - 1)
    with pytest.raises(NoUsablePhotoError, match="decompression bomb"):
        build(options, tmp_path / "d.zarr", workers=2)


def test_max_pixels_reaches_the_writers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards keep no fitted photos, so their writers decode every photo again: with the
    default limit lowered below the photos, only a run that passes its own limit on to the
    writers can finish."""
    import skyclear.degrade.io as io

    src = tmp_path / "src"
    write_photos(src, count=2)
    monkeypatch.setattr(io, "DEFAULT_MAX_PIXELS", PIXELS - 1)
    options = BuildOptions(src=str(src), size=16, tiers=("low",), max_pixels=PIXELS)
    for k in (0, 1):
        build(options, tmp_path / "d.zarr", shard=(k, 2))
    assert build(options, tmp_path / "d.zarr").complete
    with pytest.raises(NoUsablePhotoError, match="decompression bomb"):
        build(BuildOptions(src=str(src), size=16, tiers=("low",)), tmp_path / "e.zarr")


def test_max_pixels_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_photos(src, count=2)
    plain = BuildOptions(src=str(src), size=16, tiers=("low",))
    build(plain, tmp_path / "plain.zarr")
    build(BuildOptions(**{**plain.__dict__, "max_pixels": 10**9}), tmp_path / "trusted.zarr")
    assert _tree(tmp_path / "plain.zarr") == _tree(tmp_path / "trusted.zarr")
    assert "max_pixels" not in open_store(tmp_path / "plain.zarr").attrs
    assert "max_pixels" not in plain.recorded()
    with pytest.raises(ValueError, match="max_pixels"):
        BuildOptions(src=str(src), max_pixels=0)
