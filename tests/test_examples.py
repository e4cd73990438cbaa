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
