"""The wheel holds every module of the four code folders, under ``skyclear`` only."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("degrade", "restore", "datasets", "cli")


@pytest.mark.slow
def test_wheel_contains_every_module(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("skyclear-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"skyclear/{folder}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
    }
    assert expected <= names, sorted(expected - names)
    top_level = {name.split("/")[0] for name in names}
    assert top_level <= {"skyclear", *(n for n in top_level if n.endswith(".dist-info"))}
    assert "datasets" not in top_level and "cli" not in top_level
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "degrade = skyclear.cli.degrade:main" in text
    assert "restore = skyclear.cli.restore:main" in text


def test_installed_import_root() -> None:
    import skyclear.cli
    import skyclear.datasets
    import skyclear.degrade
    import skyclear.restore

    for module in (skyclear.degrade, skyclear.restore, skyclear.datasets, skyclear.cli):
        assert module.__name__.startswith("skyclear.")


def test_degrade_help_does_not_import_torch() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from skyclear.cli.degrade import main;"
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output;"
        "assert 'torch' not in sys.modules, 'torch imported by --help'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
