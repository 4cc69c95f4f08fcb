"""Stores at a URL: S3 through fsspec, served on this machine by moto's S3 server.

A store written at a URL holds the bytes of a local build under the same keys (here, on a
Dask cluster, and resumed), readers and training take it, and nothing under the prefix
that is not a skyclear store is ever replaced.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from skyclear.cli.degrade import main
from skyclear.degrade.location import identity, is_url, location, url_filesystem, url_objects
from skyclear.degrade.store import BuildOptions, StoreError, build, open_store

from ...photos import write_photos
from .test_build import SIZE, _tree_digest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new, empty bucket; the environment points S3 clients (Dask workers started in
    the test included) at the local server."""
    import s3fs

    environment = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}  # fmt: skip
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()  # made with another environment, perhaps
    name = f"skyclear-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(name)
    yield f"s3://{name}"
    s3fs.S3FileSystem.clear_instance_cache()


def _options(src: Path, tiers: tuple[str, ...] = ("haze", "low_rain", "low_haze_snow"),
             variants: int = 1) -> BuildOptions:  # fmt: skip
    return BuildOptions(src=str(src), size=SIZE, test_fraction=0.34, tiers=tiers,
                        variants=variants)  # fmt: skip


def _object_digest(url: str) -> dict[str, str]:
    """Every object under ``url`` and the SHA-1 of its bytes (``_tree_digest``'s form)."""
    import hashlib

    fs, root = url_filesystem(url)
    return {key: hashlib.sha1(fs.cat(f"{root}/{key}")).hexdigest() for key in url_objects(url)}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    write_photos(folder, count=3)
    return folder


def test_urls_are_told_from_paths() -> None:
    assert is_url("s3://bucket/data.zarr") and is_url("gs://b/x") and is_url("memory://x")
    assert not is_url("data.zarr") and not is_url("/tmp/data.zarr") and not is_url("file:///x")
    assert location("s3://bucket/data.zarr/") == "s3://bucket/data.zarr"
    assert location("file:///tmp/x.zarr") == Path("/tmp/x.zarr")
    assert location("x.zarr") == Path("x.zarr")
    assert identity("s3://bucket/d.zarr/") == "s3://bucket/d.zarr"
    assert identity("x.zarr") == str(Path("x.zarr").resolve())


def test_a_store_at_a_url_holds_the_bytes_of_a_local_build(
    src: Path, tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import tempfile

    from skyclear.datasets import CDD11Zarr
    from skyclear.degrade.store import writer

    from .test_build import _dead_pid

    build(_options(src), tmp_path / "here.zarr")
    # Photos are decoded once: kept in this machine's temporary folder, whose folders of
    # dead runs go; the writers never read a photo.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"skyclear.photos-{socket.gethostname()}-{_dead_pid()}-x1y2z3"
    stale.mkdir()

    def no_decoding(*args: object) -> None:
        raise AssertionError("a photo was decoded twice")

    monkeypatch.setattr(writer, "read_source", no_decoding)
    url = f"{bucket}/data.zarr"
    summary = build(_options(src), url)
    assert summary.complete and summary.written == 3 * 3 and summary.path == url
    assert _object_digest(url) == _tree_digest(tmp_path / "here.zarr")
    assert not list(tmp_path.glob("skyclear.photos-*"))  # the stale one and its own
    assert open_store(url).attrs["complete"] is True
    there, here = CDD11Zarr(url, split=None), CDD11Zarr(tmp_path / "here.zarr", split=None)
    assert len(there) == len(here) == 9
    for i in range(len(here)):
        for key in ("degraded", "clean", "masks"):
            assert np.array_equal(there[i][key], here[i][key])


def test_forked_loader_workers_read_a_store_at_a_url_the_parent_opened(
    src: Path, bucket: str
) -> None:
    import torch
    from skyclear.datasets import CDD11Zarr

    url = f"{bucket}/data.zarr"
    build(_options(src), url)
    data = CDD11Zarr(url, split=None)
    first = data[0]["degraded"]  # opened here, before the workers fork
    loader = torch.utils.data.DataLoader(data, batch_size=3, num_workers=2,
                                         multiprocessing_context="fork")  # fmt: skip
    batches = list(loader)
    assert sum(len(batch["degraded"]) for batch in batches) == 9
    assert torch.equal(batches[0]["degraded"][0], first)


def test_an_interrupted_store_at_a_url_resumes(src: Path, tmp_path: Path, bucket: str) -> None:
    build(_options(src), tmp_path / "here.zarr")
    url = f"{bucket}/data.zarr"
    half = build(_options(src), url, shard=(0, 2))  # the first shard prepares it
    assert not half.complete
    with pytest.raises(StoreError, match="not complete"):
        open_store(url)
    rest = build(_options(src), url)
    assert rest.complete and rest.written == 1 * 3  # only the photo the shard left
    assert _object_digest(url) == _tree_digest(tmp_path / "here.zarr")


def test_other_shards_wait_for_the_first_to_prepare_a_store_at_a_url(
    src: Path, tmp_path: Path, bucket: str
) -> None:
    build(_options(src), tmp_path / "here.zarr")
    url = f"{bucket}/data.zarr"
    results: dict[str, Any] = {}

    def second() -> None:
        try:
            results["second"] = build(_options(src), url, shard=(1, 2))
        except BaseException as error:  # reported below
            results["second"] = error

    waiting = threading.Thread(target=second)
    waiting.start()
    time.sleep(1.5)
    assert url_objects(url) == []  # it prepared nothing: it waits
    first = build(_options(src), url, shard=(0, 2))
    waiting.join(timeout=60)
    assert not waiting.is_alive()
    assert not isinstance(results["second"], BaseException), results["second"]
    assert first.written + results["second"].written == 3 * 3
    final = build(_options(src), url)
    assert final.complete and final.written == 0
    assert _object_digest(url) == _tree_digest(tmp_path / "here.zarr")


def test_objects_that_are_not_a_store_are_never_replaced(src: Path, bucket: str) -> None:
    fs, root = url_filesystem(bucket)
    fs.pipe(f"{root}/data.zarr/notes.txt", b"mine")
    for overwrite in (False, True):
        with pytest.raises(StoreError, match="not a skyclear store"):
            build(_options(src), f"{bucket}/data.zarr", overwrite=overwrite)
    assert url_objects(f"{bucket}/data.zarr") == ["notes.txt"]
    assert fs.cat(f"{root}/data.zarr/notes.txt") == b"mine"


def test_what_a_removal_could_reach_past_the_store_is_refused_and_kept(
    src: Path, bucket: str
) -> None:
    fs, root = url_filesystem(bucket)
    fs.pipe(f"{root}/data.zarr", b"an object at the store's own key")
    fs.pipe(f"{root}/run1.zarr/zarr.json", b"{}")
    fs.pipe(f"{root}/deep.zarr//notes.txt", b"a key that a listing by levels hides")
    for url, overwrite, message in (
        (f"{bucket}/data.zarr", True, "is an object that is not a skyclear store"),
        (f"{bucket}/deep.zarr", True, "holds objects that are not a skyclear store"),
        (bucket, True, "names no key inside a bucket"),
        (f"{bucket}/run[1].zarr", True, "wildcards"),
    ):
        with pytest.raises(StoreError, match=message):
            build(_options(src), url, overwrite=overwrite)
    assert fs.cat(f"{root}/data.zarr") == b"an object at the store's own key"
    assert fs.cat(f"{root}/run1.zarr/zarr.json") == b"{}"
    assert fs.cat(f"{root}/deep.zarr//notes.txt") == b"a key that a listing by levels hides"
    assert url_objects(bucket) == ["data.zarr", "deep.zarr//notes.txt", "run1.zarr/zarr.json"]


def test_a_folder_marker_is_nothing_there(src: Path, tmp_path: Path, bucket: str) -> None:
    import boto3

    name = bucket.split("://")[1]
    client = boto3.client("s3")
    client.put_object(Bucket=name, Key="data.zarr/", Body=b"")  # consoles do so
    build(_options(src), f"{bucket}/data.zarr")
    build(_options(src), tmp_path / "here.zarr")
    assert _object_digest(f"{bucket}/data.zarr") == _tree_digest(tmp_path / "here.zarr")
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=name)["Contents"]]
    assert "data.zarr/" in keys  # not the command's: left where it was


def test_a_waiting_shard_waits_through_every_state_of_a_replacement(src: Path, bucket: str) -> None:
    """What a shard waiting for the first one may find at the URL, including a store
    halfway removed or created: only this command's prepared store lets it go on."""
    from skyclear.degrade.store.ingest import find_sources
    from skyclear.degrade.store.prepare import _prepared_at

    url = f"{bucket}/data.zarr"
    options, other = _options(src), _options(src, tiers=("rain",))
    sources = find_sources(src, SIZE, map)[0]
    assert not _prepared_at(url, options, sources, overwrite=True)  # nothing yet
    build(other, url)
    assert not _prepared_at(url, options, sources, overwrite=True)  # to be replaced
    with pytest.raises(StoreError, match="different command"):
        _prepared_at(url, options, sources, overwrite=False)
    # Being removed, in its order: ``complete`` first, then every object, zarr.json last.
    import zarr

    del zarr.open_group(store=url, mode="r+").attrs["complete"]
    assert not _prepared_at(url, options, sources, overwrite=True)
    fs, root = url_filesystem(url)
    fs.rm([f"{root}/{key}" for key in url_objects(url) if key != "zarr.json"])
    assert not _prepared_at(url, options, sources, overwrite=True)
    fs.rm_file(f"{root}/zarr.json")
    assert not _prepared_at(url, options, sources, overwrite=True)
    # Being created: the group's zarr.json comes first, without attributes.
    fs.pipe(f"{root}/zarr.json", b'{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    assert not _prepared_at(url, options, sources, overwrite=True)
    build(options, url)  # what such a group is taken for: a preparation killed at once
    assert _prepared_at(url, options, sources, overwrite=False)


def test_overwrite_replaces_a_store_of_another_command_whole(
    src: Path, tmp_path: Path, bucket: str
) -> None:
    url = f"{bucket}/data.zarr"
    build(_options(src, variants=2), url)
    with pytest.raises(StoreError, match="different command"):
        build(_options(src, tiers=("rain",)), url)
    build(_options(src, tiers=("rain",)), url, overwrite=True)
    build(_options(src, tiers=("rain",)), tmp_path / "here.zarr")
    # No chunk of the larger store it replaced is left behind.
    assert _object_digest(url) == _tree_digest(tmp_path / "here.zarr")


@pytest.mark.slow
def test_a_local_cluster_writes_a_store_at_a_url(src: Path, tmp_path: Path, bucket: str) -> None:
    pytest.importorskip("distributed")
    build(_options(src), tmp_path / "here.zarr")
    url = f"{bucket}/data.zarr"
    summary = build(_options(src), url, scheduler="local:2")
    assert summary.complete and summary.written == 3 * 3
    assert _object_digest(url) == _tree_digest(tmp_path / "here.zarr")


def test_the_commands_take_a_url(src: Path, tmp_path: Path, bucket: str) -> None:
    url = f"{bucket}/data.zarr"
    runner = CliRunner()
    result = runner.invoke(main, ["make-cdd11", "--src", str(src), "--out", url + "/",
                                  "--size", str(SIZE), "--tiers", "haze,snow"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{url}: 6 samples from 3 photos, complete" in result.output
    result = runner.invoke(main, ["export", "--store", url, "--format", "hdf5",
                                  "--out", str(tmp_path / "data.h5")])  # fmt: skip
    assert result.exit_code == 0, result.output
    from skyclear.datasets import CDD11H5

    assert len(CDD11H5(tmp_path / "data.h5", split=None)) == 6
    # An export is written to local files only; an unknown protocol says so.
    result = runner.invoke(main, ["make-cdd11", "--src", str(src), "--out", f"{bucket}/d.h5",
                                  "--size", str(SIZE), "--format", "hdf5"])  # fmt: skip
    assert result.exit_code == 2 and "writes local files" in result.output, result.output
    result = runner.invoke(main, ["make-cdd11", "--src", str(src), "--out", "nosuch://b/d.zarr",
                                  "--size", str(SIZE)])  # fmt: skip
    assert result.exit_code == 1 and "cannot open this protocol" in result.output, result.output
    result = runner.invoke(main, ["make-cdd11", "--src", str(src), "--out", "s3://"])
    assert result.exit_code == 2 and "names no place" in result.output, result.output
    assert url_objects(f"{bucket}/d.h5") == []


def test_training_and_evaluation_read_a_store_at_a_url(
    src: Path, tmp_path: Path, bucket: str
) -> None:
    from skyclear.restore.checkpoint import load_checkpoint
    from skyclear.restore.data import data_kind
    from skyclear.restore.train import train

    from ...restore.runs import quick_config

    url = f"{bucket}/data.zarr"
    build(_options(src), url)
    assert data_kind(url) == "zarr"
    train(quick_config("steps=2", "val_every=2", "ckpt_every=2"), url, tmp_path / "run")
    assert (tmp_path / "run" / "last.pt").is_file()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["data"] == url  # as given
    from skyclear.cli.restore import main as restore

    checkpoint = str(tmp_path / "run" / "last.pt")
    result = CliRunner().invoke(restore, ["eval", "--ckpt", checkpoint, "--data", url,
                                          "--out", str(tmp_path / "eval")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "eval" / "eval.json").is_file()
    result = CliRunner().invoke(restore, ["compare", str(tmp_path / "run"), "--data", url,
                                          "--out", str(tmp_path / "compare")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "not on the compared store" not in result.output  # the URL names its store
