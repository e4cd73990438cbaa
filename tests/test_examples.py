"""The README's main job: sampling images from the embedded default generator."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_sample_images_from_the_embedded_default(tmp_path):
    out = tmp_path / "samples.png"
    p = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sample_images.py"), str(out), "-n", "3", "--device", "cpu"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    img = iio.imread(out)
    assert img.shape == (64, 3 * 64, 3) and img.dtype == np.uint8
    assert img.std() > 5  # not a blank image
    # same seed, same images
    again = tmp_path / "again.png"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sample_images.py"), str(again), "-n", "3", "--device", "cpu"],
        check=True,
    )
    assert np.array_equal(iio.imread(again), img)


def test_make_talking_heads_writes_a_dataset(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "make_talking_heads.py"),
            str(tmp_path / "heads"),
            "--videos",
            "2",
            "--frames",
            "5",
            "--size",
            "16",
            "--preview",
            str(tmp_path / "p.png"),
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path / "heads" / "video_0001").glob("*.png"))) == 5
    assert iio.imread(tmp_path / "p.png").shape == (6 * 16, 12 * 16, 3)


def test_make_demo_runs_end_to_end_at_a_tiny_scale(tmp_path):
    out = tmp_path / "demo"
    p = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_demo.py"), str(out), "--scale", "tiny", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings["seconds"]) == {"data", "train-image", "pca", "train", "preview"}
    strip = iio.imread(out / "demo_frames.png")
    assert strip.shape == (4 * 16, 8 * 16, 3)
    assert (out / "home" / "motion" / "heads.safetensors").is_file()


def test_making_videos_draws_the_strips_of_the_docs(tmp_path):
    script = str(ROOT / "examples" / "making_videos.py")
    p = subprocess.run(
        [sys.executable, script, "--out", str(tmp_path), "--small"], capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-3000:]
    cell, mark = 16, [255, 48, 0]
    loop = iio.imread(tmp_path / "loop.png")
    assert loop.shape == (2 * cell, 10 * cell, 3)  # loop, then open: frames n-5..n-1 | 0..4
    assert (loop[:, 5 * cell - 1 : 5 * cell + 1] == mark).all()  # the seam
    keys = iio.imread(tmp_path / "keyframes.png")
    assert keys.shape == (cell, 11 * cell, 3)  # 3 keyframes, 5 frames a segment
    for k in (0, 5, 10):  # each keyframe's frame is outlined, no other
        assert (keys[0, k * cell : (k + 1) * cell] == mark).all()
    assert not (keys[0, cell : 2 * cell] == mark).all()
    edits = iio.imread(tmp_path / "edits.png")
    assert edits.shape == (7 * cell, 8 * cell, 3)  # strengths -3..3 x 8 frames
    rows = edits.reshape(7, cell, -1, 3).astype(float)
    assert np.abs(rows[0] - rows[3]).mean() > 5 and np.abs(rows[6] - rows[3]).mean() > 5  # the edit shows
    assert max(p.stat().st_size for p in tmp_path.glob("*.png")) < 200_000
    # a mistake is one line, and writes nothing
    bad = subprocess.run(
        [sys.executable, script, "--out", str(tmp_path / "loop.png" / "x")], capture_output=True, text=True
    )
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "making_videos.py: " in bad.stderr
