"""The wheel carries what weights/ ships, and the console script."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel pip builds from this checkout (offline, no build isolation)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("mocohd_cli-*.whl")
    return path


def test_wheel_contains_shipped_weights(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    registry = json.loads((ROOT / "weights" / "registry.json").read_text())
    shipped = [e["file"] for e in registry["models"] if e.get("file")]
    assert shipped, "the registry ships no model"
    for f in ["registry.json", *shipped]:
        assert f"mocohd_cli/weights/{f}" in names, f
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mocohd = mocohd_cli.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_contains_every_subpackage(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "mocohd_cli").rglob("*.py"))
    assert sources and [s for s in sources if s not in names] == []
