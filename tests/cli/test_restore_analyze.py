"""``restore analyze`` as a user runs it: maps, JSON lines, a contact sheet, calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skyclear.cli.restore_analyze import analyze
from skyclear.restore.checkpoint import save_checkpoint
from skyclear.restore.config import config_to_dict, override, preset
from skyclear.restore.nn import F2DNet


def _checkpoint(root: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    weights = F2DNet(preset("tiny").model).state_dict()
    path = root / f"tiny{seed}.pt"
    save_checkpoint({"config": config_to_dict(preset("tiny")), "step": 0, "model": weights,
                     "ema": weights}, path)  # fmt: skip
    return path


def _invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(analyze, [str(arg) for arg in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(folder / "sub" / "b.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


def test_analysis_of_a_folder_calibrated_on_a_store(
    store: Path, photos: Path, tmp_path: Path
) -> None:
    ckpt, out = _checkpoint(tmp_path), tmp_path / "out"
    code, output = _invoke(photos, "--ckpt", ckpt, "--out", out, "--calibrate-on", store)
    assert code == 1, output  # the broken photo
    assert "failed broken.png" in output and "analysed 2 of 3 photos" in output
    assert "calibrated on" in output
    records = [json.loads(line) for line in (out / "analysis.jsonl").read_text().splitlines()]
    assert [record["photo"] for record in records] == ["a.png", "sub/b.jpg"]
    for record in records:
        assert set(record["weights"]) == {"low", "haze", "rain", "snow"}
        assert all(0.0 <= share <= 1.0 for share in record["coverage"].values())
        assert isinstance(record["unusual"], bool) and record["ood_score"] > 0
        assert (out / record["maps"]).is_file()
    assert (out / "contact.png").is_file() and (out / "calibration.json").is_file()
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["quantile"] == 0.95 and calibration["held_out_images"] > 0

    again = tmp_path / "again"
    code, output = _invoke(photos / "a.png", "--ckpt", ckpt, "--out", again,
                           "--calibration", out / "calibration.json")  # fmt: skip
    assert code == 0, output
    (record,) = [json.loads(line) for line in (again / "analysis.jsonl").read_text().splitlines()]
    assert record["ood_score"] == records[0]["ood_score"]
    # Into the same folder with the calibration it holds: read, left as it was.
    before = (out / "calibration.json").read_bytes()
    code, output = _invoke(photos / "a.png", "--ckpt", ckpt, "--out", out,
                           "--calibration", out / "calibration.json")  # fmt: skip
    assert code == 0, output
    assert (out / "calibration.json").read_bytes() == before

    calibrated = out / "calibration.json"
    code, output = _invoke(photos / "a.png", "--ckpt", ckpt, "--out", tmp_path / "w",
                           "--calibration", calibrated, "--weights", "model")  # fmt: skip
    assert code == 2 and "made for checkpoint" in output  # calibrated on the ema weights

    other = _checkpoint(tmp_path, seed=1)
    code, output = _invoke(photos / "a.png", "--ckpt", other, "--out", tmp_path / "x",
                           "--calibration", out / "calibration.json")  # fmt: skip
    assert code == 2 and "made for checkpoint" in output


def test_without_calibration_no_flag_and_a_foreign_folder_is_left_alone(
    photos: Path, tmp_path: Path
) -> None:
    ckpt, out = _checkpoint(tmp_path), tmp_path / "out"
    code, output = _invoke(photos / "a.png", "--ckpt", ckpt, "--out", out)
    assert code == 0 and "not calibrated" in output
    (record,) = [json.loads(line) for line in (out / "analysis.jsonl").read_text().splitlines()]
    assert record["unusual"] is None and record["ood_score"] is None
    code, _ = _invoke(photos / "a.png", "--ckpt", ckpt, "--out", out)  # an earlier analysis
    assert code == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, output = _invoke(photos / "a.png", "--ckpt", ckpt, "--out", mine)
    assert code == 2 and (mine / "notes.txt").read_text() == "keep me"
    assert sorted(path.name for path in mine.iterdir()) == ["notes.txt"]


def test_two_photos_sharing_a_maps_file_and_models_without_maps(
    photos: Path, tmp_path: Path
) -> None:
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photos / "a.jpg")  # beside a.png
    ckpt, out = _checkpoint(tmp_path), tmp_path / "out"
    code, output = _invoke(photos, "--ckpt", ckpt, "--out", out)
    assert code == 1 and "its maps file a_maps.png is also that of" in output
    torch.manual_seed(0)
    config = override(preset("tiny"), ["model.routing=image"])
    weights = F2DNet(config.model).state_dict()
    image_routed = tmp_path / "image.pt"
    save_checkpoint({"config": config_to_dict(config), "step": 0, "model": weights,
                     "ema": weights}, image_routed)  # fmt: skip
    code, output = _invoke(photos / "a.png", "--ckpt", image_routed, "--out", tmp_path / "o")
    assert code == 2 and "no per-pixel parser maps" in output


def test_each_photo_s_maps_are_let_go_once_written(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a photo's record and its small contact-sheet row outlive it: by the time the
    sheets are drawn, no photo's full-size maps are held (a folder of thousands fits)."""
    import gc
    import weakref

    from skyclear.restore import analysis as module

    held: list[weakref.ref[torch.Tensor]] = []
    analyse = module.analyse

    def tracked(*args: object, **kwargs: object) -> module.Analysis:
        result = analyse(*args, **kwargs)  # type: ignore[arg-type]
        held.append(weakref.ref(result.maps))
        return result

    def sheet(rows: list[module.SheetRow]) -> np.ndarray:
        gc.collect()
        alive = [ref for ref in held[:-1] if ref() is not None]  # the loop's last may stay
        assert not alive, f"{len(alive)} photos' maps still held when drawing the sheets"
        return contact_sheet(rows)

    contact_sheet = module.contact_sheet
    monkeypatch.setattr(module, "analyse", tracked)
    monkeypatch.setattr(module, "contact_sheet", sheet)
    for index in range(3):
        Image.fromarray(np.full((20, 20, 3), 40 * index, np.uint8)).save(photos / f"c{index}.png")
    code, output = _invoke(photos, "--ckpt", _checkpoint(tmp_path), "--out", tmp_path / "out")
    assert code == 1 and "analysed 5 of 6 photos" in output, output  # the broken one
    assert len(held) == 5 and (tmp_path / "out" / "contact.png").is_file()


def test_the_sheets_of_an_earlier_longer_analysis_go_and_others_stay(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyclear.cli import restore_analyze

    monkeypatch.setattr(restore_analyze, "_SHEET_ROWS", 1)
    ckpt, out = _checkpoint(tmp_path), tmp_path / "out"
    _invoke(photos, "--ckpt", ckpt, "--out", out)  # two photos: two pages
    assert sorted(path.name for path in out.glob("contact*")) == [
        "contact-01.png",
        "contact-02.png",
    ]
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / "contact-07.png")  # not a sheet
    code, _ = _invoke(photos / "a.png", "--ckpt", ckpt, "--out", out)
    assert code == 0
    assert sorted(path.name for path in out.glob("contact*")) == ["contact-07.png", "contact.png"]


def test_the_maps_an_earlier_analysis_listed_go_once_this_one_does_not_write_them(
    photos: Path, tmp_path: Path
) -> None:
    ckpt, out = _checkpoint(tmp_path), tmp_path / "out"
    _invoke(photos, "--ckpt", ckpt, "--out", out)
    assert (out / "a_maps.png").is_file() and (out / "sub" / "b_maps.png").is_file()
    # Files of such names that no analysis wrote stay, listed or not.
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / "c_maps.png")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "d_maps.png").write_bytes((out / "a_maps.png").read_bytes())  # marked
    with (out / "analysis.jsonl").open("a") as listing:
        for name in ("c_maps.png", "../elsewhere/d_maps.png", str(outside / "d_maps.png")):
            listing.write(json.dumps({"photo": name, "maps": name}) + "\n")
    code, output = _invoke(photos / "a.png", "--ckpt", ckpt, "--out", out)
    assert code == 0, output
    assert (out / "a_maps.png").is_file() and not (out / "sub" / "b_maps.png").exists()
    assert (out / "c_maps.png").is_file() and (outside / "d_maps.png").is_file()
    records = [json.loads(line) for line in (out / "analysis.jsonl").read_text().splitlines()]
    assert [record["maps"] for record in records] == ["a_maps.png"]


def test_no_spelling_of_an_earlier_name_removes_a_maps_file_this_run_wrote(
    photos: Path, tmp_path: Path
) -> None:
    ckpt, out = _checkpoint(tmp_path), tmp_path / "out"
    _invoke(photos, "--ckpt", ckpt, "--out", out)
    (out / "alias").symlink_to(out / "sub", target_is_directory=True)
    (out / "old_maps.png").write_bytes((out / "a_maps.png").read_bytes())  # an earlier one
    with (out / "analysis.jsonl").open("a") as listing:
        for maps in ("./a_maps.png", "alias/b_maps.png", "SUB/b_maps.png", ["x"], "a\0_maps.png",
                     "old_maps.png", 7):  # fmt: skip
            listing.write(json.dumps({"maps": maps}) + "\n")
        listing.write('[1, 2]\n{"maps": "torn_ma')  # lines that name nothing
    code, output = _invoke(photos, "--ckpt", ckpt, "--out", out)
    assert code == 1 and "analysed 2 of 3 photos" in output, output  # the broken one
    assert (out / "a_maps.png").is_file() and (out / "sub" / "b_maps.png").is_file()
    assert not (out / "old_maps.png").exists()


def test_the_maps_of_a_run_cut_short_go_with_the_next_run(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyclear.restore import analysis

    ckpt, out = _checkpoint(tmp_path), tmp_path / "out"
    save_maps, saved = analysis.save_maps, []

    class KilledError(Exception):
        pass

    def cut_short(path: Path, *args: object, **kwargs: object) -> None:
        if saved:
            raise KilledError
        save_maps(path, *args, **kwargs)  # type: ignore[arg-type]
        saved.append(path)

    monkeypatch.setattr(analysis, "save_maps", cut_short)
    with pytest.raises(KilledError):
        _invoke(photos, "--ckpt", ckpt, "--out", out)
    monkeypatch.setattr(analysis, "save_maps", save_maps)
    assert saved == [out / "a_maps.png"] and not (out / "analysis.jsonl").exists()
    code, output = _invoke(photos / "sub", "--ckpt", ckpt, "--out", out)  # an earlier run's
    assert code == 0, output
    assert sorted(path.name for path in out.rglob("*_maps.png")) == ["b_maps.png"]
    assert sorted(path.name for path in out.iterdir()) == ["analysis.jsonl", "b_maps.png",
                                                           "contact.png"]  # fmt: skip


def test_files_no_analysis_wrote_are_neither_replaced_nor_removed(
    photos: Path, tmp_path: Path
) -> None:
    ckpt, out = _checkpoint(tmp_path), tmp_path / "out"
    _invoke(photos, "--ckpt", ckpt, "--out", out)
    marked = (out / "a_maps.png").read_bytes()
    mine = tmp_path / "mine.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(mine)
    (out / "a_maps.png").write_bytes(mine.read_bytes())  # the user's, of a photo's name
    (out / "contact.png").write_bytes(mine.read_bytes())  # and of the sheet's
    (out / "broken_maps.png").write_bytes(marked)  # listed nowhere: a failed photo's name
    code, output = _invoke(photos, "--ckpt", ckpt, "--out", out)
    assert code == 1 and "analysed 1 of 3 photos" in output, output
    assert "failed a.png" in output and "move it away" in output
    assert "not written" in output and "contact.png" in output
    assert (out / "a_maps.png").read_bytes() == mine.read_bytes()
    assert (out / "contact.png").read_bytes() == mine.read_bytes()
    assert (out / "broken_maps.png").read_bytes() == marked


@pytest.mark.parametrize(
    ("pending", "taken"),
    [('"a_maps.png"\n"sub/b_maps.png"\n"c_ma', True), ('"a_maps.png"\n', True), ("", True),
     ('"notes.txt"\n', False), ('7\n"a_maps.png"\n', False), ("my notes", False),
     ('"my notes', False), ('"a_maps.png"\n"c_ma\n', False)],
)  # fmt: skip
def test_only_a_pending_list_of_maps_makes_a_folder_an_analysis(
    pending: str, taken: bool, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".analysis-pending").write_text(pending)
    (out / "notes.txt").write_text("mine")
    code, output = _invoke(photos / "a.png", "--ckpt", _checkpoint(tmp_path), "--out", out)
    assert (code == 0) == taken, output
    assert (out / "notes.txt").read_text() == "mine"


def test_a_run_killed_once_its_list_is_in_leaves_no_maps_the_next_cannot_find(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyclear.cli import restore_analyze

    ckpt, out = _checkpoint(tmp_path), tmp_path / "out"
    _invoke(photos, "--ckpt", ckpt, "--out", out)
    with (out / "analysis.jsonl").open("a") as listing:  # a name no analysis gives
        listing.write(json.dumps({"maps": "notes.txt"}) + "\n")
    remove = restore_analyze._remove_stale_maps

    class KilledError(Exception):
        pass

    def killed(*_: object) -> None:
        raise KilledError

    monkeypatch.setattr(restore_analyze, "_remove_stale_maps", killed)
    with pytest.raises(KilledError):
        _invoke(photos / "a.png", "--ckpt", ckpt, "--out", out)
    assert (out / "sub" / "b_maps.png").is_file()  # listed by no analysis.jsonl now
    monkeypatch.setattr(restore_analyze, "_remove_stale_maps", remove)
    code, output = _invoke(photos / "a.png", "--ckpt", ckpt, "--out", out)
    assert code == 0, output
    assert not (out / "sub" / "b_maps.png").exists() and not (out / ".analysis-pending").exists()


@pytest.mark.parametrize("kind", ["link", "folder"])
def test_a_pending_list_that_is_no_file_is_refused(kind: str, photos: Path, tmp_path: Path) -> None:
    ckpt, out = _checkpoint(tmp_path), tmp_path / "out"
    _invoke(photos / "a.png", "--ckpt", ckpt, "--out", out)
    target = tmp_path / "elsewhere.txt"
    target.write_text("mine\n")
    if kind == "link":
        (out / ".analysis-pending").symlink_to(target)
    else:
        (out / ".analysis-pending").mkdir()
    code, output = _invoke(photos / "a.png", "--ckpt", ckpt, "--out", out)
    assert code == 2 and "is not a list that an analysis wrote" in output, output
    assert target.read_text() == "mine\n" and (out / ".analysis-pending").exists()
