"""Writers: output rules, encoder failures, a full disk, stale temporaries, limits.

The writers are reached through ``mocohd_cli.render`` (its re-exports), as library users reach them."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mocohd_cli import MocohdError, render as R


def frames(n=4, videos=1, size=16, noise=False):
    rng = np.random.default_rng(0)
    for i in range(n):
        if noise:
            yield torch.from_numpy(rng.integers(0, 256, (videos, size, size, 3), dtype=np.uint8))
        else:
            yield torch.full((videos, size, size, 3), 20 * i, dtype=torch.uint8)


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if "partial" in p.name)


FAKES = {  # a stand-in ffmpeg: (shell script body, what the error must say)
    "no space": (
        'for a; do out=$a; done; head -c 1000 > "$out"; cat > /dev/null\n'
        'echo "[out#0/mp4 @ 0x55d] Error writing trailer of $out: No space left on device" >&2; exit 1',
        "no space left on device",
    ),
    "dies at once": (
        'echo "[in#0 @ 0x1] Error opening input: Invalid data found when processing input" >&2; exit 1',
        "Error opening input: Invalid data found when processing input",
    ),
    "exit 0, empty file": ('for a; do out=$a; done; : > "$out"; cat > /dev/null; exit 0', "empty file"),
    "killed": ('for a; do out=$a; done; head -c 10 > "$out"; kill -9 $$', "stopped by SIGKILL"),
}


@pytest.mark.parametrize("fake", list(FAKES))
def test_encoder_failures_leave_nothing_and_keep_the_old_file(tmp_path, monkeypatch, fake):
    script, message = FAKES[fake]
    exe = tmp_path / "ffmpeg"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    (out / "v.mp4").write_bytes(b"the user's previous video")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(exe))
    with pytest.raises(MocohdError) as e:
        R.write_videos(frames(40, size=64, noise=True), out / "v.mp4", "mp4", 12, 1, False)
    text = str(e.value)
    assert message in text and f"'{out / 'v.mp4'}'" in text and "partial" not in text and "\n" not in text
    assert (out / "v.mp4").read_bytes() == b"the user's previous video"
    assert sorted(p.name for p in out.iterdir()) == ["v.mp4"]


_FULL = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    import numpy as np
    from mocohd_cli import MocohdError, render as R
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
    rng = np.random.default_rng(0)
    frames = (rng.integers(0, 256, (1, 160, 160, 3), dtype=np.uint8) for _ in range(12))
    try:
        paths, count, _ = R.write_videos(frames, Path(sys.argv[1]), sys.argv[2], 12, 1, False)
    except MocohdError as e:
        print(e)
        sys.exit(1)
    print("wrote", paths[0], count)
""")


@pytest.mark.parametrize("name,fmt", [("big.gif", "gif"), ("big.mp4", "mp4"), ("frames", "png")])
def test_a_write_that_fails_for_real_is_reported_and_nothing_is_left(tmp_path, name, fmt):
    """A file-size limit makes the encoder's (or our own PNG) writes fail with EFBIG, as a full disk
    does with ENOSPC."""
    r = subprocess.run(
        [sys.executable, "-c", _FULL, str(tmp_path / name), fmt], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert (
        r.stdout.strip() == f"cannot write '{tmp_path / name}': file too large (a file-size limit or the file system's)"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced_in_one_step(tmp_path):
    (tmp_path / "v.gif").write_bytes(b"old")
    paths, count, size = R.write_videos(frames(3), tmp_path / "v.gif", "gif", 10, 1, False)
    import imageio.v3 as iio

    assert iio.imread(paths[0], index=None).shape[0] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.gif"]


def test_stale_temporaries_of_dead_renders_are_swept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = os.getppid()
    names = {
        f".v.partial-{dead.pid}.mp4": False,  # this output, process gone: removed
        f".v.partial-{live}.mp4": True,  # a render still running: kept
        f".v.partial-{dead.pid}.gif": True,  # another output (v.gif)
        f".w.partial-{dead.pid}.mp4": True,  # another output (w.mp4)
        f"v.partial-{dead.pid}.mp4": True,  # not our pattern
        f".v.partial-{dead.pid}.mp4.bak": True,
        f".v.partial-x{dead.pid}.mp4": True,
    }
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    frames_dir = tmp_path / "frames"
    R.write_videos(frames(2), frames_dir, "png", 10, 1, False)  # a frame folder, with a dead render's staging folder
    (frames_dir / f".partial-{dead.pid}").mkdir()
    (frames_dir / f".partial-{dead.pid}" / "000000.png").write_bytes(b"x")
    (tmp_path / f".frames.partial-{dead.pid}").mkdir()

    R.write_videos(frames(2), tmp_path / "v.mp4", "mp4", 10, 1, False)
    R.write_videos(frames(3), frames_dir, "png", 10, 1, False)
    for n, kept in names.items():
        assert (tmp_path / n).exists() == kept, n
    assert sorted(p.name for p in frames_dir.iterdir()) == [".mocohd-frames", "000000.png", "000001.png", "000002.png"]
    assert not (tmp_path / f".frames.partial-{dead.pid}").exists()


def test_frame_folders_are_recognised_by_their_marker(tmp_path):
    from mocohd_cli import video

    f = tmp_path / "f"
    f.mkdir()
    assert video.foreign_entries(f) == []  # empty: usable
    (f / "000000.png").write_bytes(b"x")
    assert video.foreign_entries(f) == ["000000.png"]  # frames from elsewhere (ffmpeg -i x %06d.png): not ours
    (f / ".mocohd-frames").write_text("")
    assert video.foreign_entries(f) == []
    (f / "notes.txt").write_text("mine")
    (f / "0001.png").write_bytes(b"x")
    assert video.foreign_entries(f) == ["0001.png", "notes.txt"]


def test_frame_size_and_count_limits():
    from mocohd_cli import video
    from mocohd_cli.errors import UsageError

    video.check_frame_budget(64, 1024, 1024, grid=True)  # 8 x 8 tiles: 8192 x 8192
    with pytest.raises(UsageError, match="at most 64 videos of this size"):
        video.check_frame_budget(65, 1024, 1024, grid=True)
    with pytest.raises(UsageError, match="at most 16384 px a side"):
        video.check_frame_budget(2, 16, 16400, grid=True)
    with pytest.raises(UsageError, match="at most 1024 videos"):
        video.check_videos(1025, grid=True)
    with pytest.raises(UsageError, match="at most 256"):
        video.check_videos(257, grid=False)
    with pytest.raises(UsageError, match="whole number"):
        video.check_videos(2.5, grid=False)
    assert video.check_fps("gif", 100) == 100
    for fmt, fps in (
        ("gif", 101),
        ("mp4", 0),
        ("mp4", -5),
        ("webm", float("nan")),
        ("mp4", float("inf")),
        ("mp4", 1001),
    ):
        with pytest.raises(UsageError, match="fps must be between"):
            video.check_fps(fmt, fps)


def test_write_videos_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="fps must be between 0.01 and 100 for gif"):
        R.write_videos(frames(2), tmp_path / "v.gif", "gif", 120, 1, False)
    with pytest.raises(ValueError, match="encoder takes at most 16384 px"):
        R.write_videos(
            (torch.zeros(1, 2, 16500, 3, dtype=torch.uint8) for _ in range(2)), tmp_path / "w.mp4", "mp4", 10, 1, False
        )
    with pytest.raises(MocohdError, match="no frames"):
        R.write_videos(iter(()), tmp_path / "x.mp4", "mp4", 10, 1, False)
    assert list(tmp_path.iterdir()) == []
