"""The output rule: never over an input, never over what skyclear did not write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from skyclear.degrade.outputs import OutputError, check_apart, check_output, replace_text


def _never(path: Path) -> bool:
    return False


def _marked(path: Path) -> bool:
    return (path / "ours").is_file()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"photo")
    return folder


def test_new_empty_and_own_outputs_pass(tmp_path: Path, src: Path) -> None:
    check_output(tmp_path / "new" / "out", inputs=[src], is_ours=_never)
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", inputs=[src], is_ours=_never)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "ours").write_text("")
    (tmp_path / "mine" / "data").write_text("")
    check_output(tmp_path / "mine", inputs=[src, None], is_ours=_marked)


def test_content_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"folder that is not a skyclear store"):
        check_output(tmp_path / "folder", is_ours=_marked, kind="a skyclear store")
    (tmp_path / "file").write_text("mine")
    with pytest.raises(OutputError, match="is a file that is not"):
        check_output(tmp_path / "file", is_ours=_marked)
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    with pytest.raises(OutputError, match="does not exist"):
        check_output(tmp_path / "dangling", is_ours=_marked)
    assert (tmp_path / "folder" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("out", "relation"),
    [
        ("photos", "is the input"),
        ("photos/sub", "lies inside the input"),
        ("photos/new/d.zarr", "lies inside the input"),
        (".", "holds the input"),
        ("photos/sub/../../photos", "is the input"),
    ],
)
def test_inputs_are_refused_whatever_is_ours(
    tmp_path: Path, src: Path, out: str, relation: str
) -> None:
    with pytest.raises(OutputError, match=relation):
        check_output(tmp_path / out, inputs=[src], is_ours=lambda path: True)
    with pytest.raises(OutputError, match=relation):
        check_apart(tmp_path / out, [None, src])


def test_symlinks_that_lead_back_into_an_input_count(tmp_path: Path, src: Path) -> None:
    (tmp_path / "to_src").symlink_to(src)
    (tmp_path / "to_sub").symlink_to(src / "sub")
    (tmp_path / "to_root").symlink_to(tmp_path)
    cases = {
        "to_src": "is the input",
        "to_sub": "lies inside the input",
        "to_src/d.zarr": "lies inside the input",
        "to_root": "holds the input",
    }
    for out, relation in cases.items():
        with pytest.raises(OutputError, match=relation) as refused:
            check_output(tmp_path / out, inputs=[src], is_ours=lambda path: True)
        assert "that is," in str(refused.value), "the message says where the link leads"
    # An input reached through a symlink is the same input.
    with pytest.raises(OutputError, match="lies inside the input"):
        check_apart(src / "d.zarr", [tmp_path / "to_src"])


def test_neighbours_are_not_inputs(tmp_path: Path, src: Path) -> None:
    check_apart(tmp_path / "photos.zarr", [src])
    check_apart(tmp_path / "photos2", [src])
    check_apart(tmp_path / "other" / "photos", [src])


def test_replace_text_replaces_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, plain = tmp_path / "list.jsonl", tmp_path / "plain.txt"
    path.write_text("old\n")
    plain.write_text("")
    replace_text(path, "new\n")
    assert path.read_text() == "new\n" and sorted(tmp_path.iterdir()) == [path, plain]
    assert path.stat().st_mode == plain.stat().st_mode  # as any file the user makes

    def killed(*_: object) -> None:
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError, match="killed"):
        replace_text(path, "newer\n")
    assert path.read_text() == "new\n" and sorted(tmp_path.iterdir()) == [path, plain]
