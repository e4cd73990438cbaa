"""Rendering: frames, formats, grid, interpolation, seeds, cross-domain, failures."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from mocohd_cli import MocohdError, render as R
from mocohd_cli.formats import canonical
from mocohd_cli.frames import draw_w1, synthesize
from mocohd_cli.loaders import load_image_generator
from mocohd_cli.loaders.latents import Latent, save_latent
from mocohd_cli.loaders.motion_models import load_motion, save_motion
from mocohd_cli.loaders.pca_bases import express, find_cached, load_pca, pca_for
from mocohd_cli.motion import MotionConfig, MotionGenerator
from mocohd_cli.pca import fit_pca
from mocohd_cli.stopping import Cancelled

from .conftest import randomized_generator, run, save_canonical, tiny_config
from .test_invert import trained_looking_generator  # a tiny generator that inversions succeed with


def _read_video(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for f in reader]
    return meta, frames


def test_mp4_has_the_frames_size_and_fps(tmp_path, pair):
    g, m = pair
    r = R.render(tmp_path / "v.mp4", R.RenderConfig(motion=m, image=g, frames=9, fps=15, device="cpu"))
    meta, frames = _read_video(r.paths[0])
    assert r.frames == 9 and len(frames) == 9
    assert tuple(meta["size"]) == (16, 16) and meta["fps"] == 15
    assert meta["codec"] == "h264" and "yuv420p" in meta["pix_fmt"]


def test_interpolation_frame_count(tmp_path, pair):
    g, m = pair
    r = R.render(tmp_path / "v.mp4", R.RenderConfig(motion=m, image=g, frames=6, interpolate=2, device="cpu"))
    assert r.frames == 11 and len(_read_video(r.paths[0])[1]) == 11
    G, M = load_image_generator(g), load_motion(m)
    w1 = torch.randn(2, 16)
    with torch.no_grad():
        key = torch.cat(list(R.trajectory_chunks(M, w1, 6, chunk=2, generator=torch.Generator().manual_seed(0))), 1)
        mid = torch.cat(
            list(R.trajectory_chunks(M, w1, 6, interpolate=2, chunk=2, generator=torch.Generator().manual_seed(0))), 1
        )
    assert mid.shape[1] == 11
    torch.testing.assert_close(mid[:, ::2], key)
    torch.testing.assert_close(mid[:, 1::2], (key[:, :-1] + key[:, 1:]) / 2)
    del G


@pytest.mark.parametrize("name,fmt", [("v.gif", "gif"), ("v.webm", "webm"), ("frames", "png")])
def test_other_formats(tmp_path, pair, name, fmt):
    g, m = pair
    r = R.render(tmp_path / name, R.RenderConfig(motion=m, image=g, frames=5, device="cpu"))
    out = r.paths[0]
    if fmt == "png":
        pngs = sorted(out.glob("*.png"))
        assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(5)]
        assert iio.imread(pngs[0]).shape == (16, 16, 3)
    elif fmt == "gif":
        assert iio.imread(out, index=None).shape[0] == 5
    else:
        assert len(_read_video(out)[1]) == 5
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_several_videos_and_grid(tmp_path, pair):
    g, m = pair
    r = R.render(tmp_path / "v.mp4", R.RenderConfig(motion=m, image=g, frames=4, videos=3, device="cpu"))
    assert [p.name for p in r.paths] == ["v_000.mp4", "v_001.mp4", "v_002.mp4"]
    r = R.render(tmp_path / "grid", R.RenderConfig(motion=m, image=g, frames=4, videos=3, grid=True, device="cpu"))
    first = iio.imread(r.paths[0] / "000000.png")
    assert first.shape == (32, 32, 3)  # 2 x 2 tiles of 16 px, the fourth empty
    G, M = load_image_generator(g), load_motion(m)
    frame0 = next(R.render_frames(M, G, 4, videos=3)).numpy()
    np.testing.assert_array_equal(first, R.tile(frame0))
    assert not first[16:, 16:].any()


def test_same_seed_same_frames(pair):
    g, m = pair
    G, M = load_image_generator(g), load_motion(m)

    def frames(seed, **kw):
        return torch.stack(list(R.render_frames(M, G, 6, videos=2, seed=seed, **kw)))

    a, b, c = frames(3), frames(3), frames(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (6, 2, 16, 16, 3) and a.dtype == torch.uint8
    assert not torch.equal(a[0], a[-1])  # it moves
    # frames do not depend on how many are synthesised at once, but for a level of rounding: the
    # CPU's convolution kernels block a batch of 1 and one of 5 differently (one pixel moved by one
    # level on one thread, none on two; docs/rendering.md#reproducibility)
    for noise in ("fixed", "random"):
        one, five = frames(3, batch=1, noise=noise), frames(3, batch=5, noise=noise)
        assert (one.int() - five.int()).abs().max() <= 1 and (one != five).float().mean() < 0.01
    # fixed noise: the same maps for every frame of a video; random: new ones
    r1, r2 = frames(3, noise="random"), frames(3, noise="off")
    assert not torch.equal(a, r1) and not torch.equal(a, r2)


def test_cross_domain_re_expression(tmp_path, pair):
    g, m = pair
    other = randomized_generator(tiny_config(16, z_dim=16, w_dim=16), seed=9)
    opath = tmp_path / "other.safetensors"
    save_canonical(opath, other)
    r = R.render(tmp_path / "x", R.RenderConfig(motion=m, image=opath, frames=4, device="cpu", noise="off"))
    assert r.cross_domain and "re-expressed" in r.cross_domain
    # ... in the basis of 'other', cached in the store on first use
    cached = find_cached(canonical.read_header(opath).weights_sha256)
    assert cached is not None
    basis = load_pca(cached)
    G, M = load_image_generator(opath), load_motion(m).retarget(basis.components, basis.stdev)
    expected = [f[0].numpy() for f in R.render_frames(M, G, 4, noise="off")]
    got = [iio.imread(p) for p in sorted((tmp_path / "x").glob("*.png"))]
    for e, o in zip(expected, got, strict=True):
        np.testing.assert_array_equal(e, o)
    # the same pair as trained: nothing to re-express
    assert R.render(tmp_path / "y", R.RenderConfig(motion=m, image=g, frames=2, device="cpu")).cross_domain is None


@pytest.mark.usefixtures("one_thread")  # tiny forwards (tests/conftest.py)
def test_any_motion_drives_any_w_size(tmp_path, pair, capsys):
    """Portable motion: the 16-d tiny motion drives the 128-d demo generator, and the 128-d demo
    motion a 512-d one; each video starts at the target's own first latent and moves."""
    g, m = pair
    # each target's basis fitted beforehand on fewer samples (cached in the store, where render finds
    # it): the default million samples per generator are what most of this test's time went to
    pca_for("demo", samples=20_000, batch=5000)
    code, out, err = run(
        capsys,
        "render",
        str(tmp_path / "v"),
        "--motion",
        str(m),
        "--image",
        "demo",
        "-n",
        "3",
        "--noise",
        "off",
        "--device",
        "cpu",
    )
    assert code == 0, err
    said = " ".join(err.split())  # the note, unwrapped
    assert "its 16-d first latent carried from the 128-d w through PCA coordinates" in said
    assert "has no PCA mean: taken as 0" in said  # this tiny motion file was saved without one
    assert len(list((tmp_path / "v").glob("*.png"))) == 3
    big = randomized_generator(tiny_config(16, z_dim=64, w_dim=512))
    bpath = tmp_path / "big.safetensors"
    save_canonical(bpath, big)
    G = load_image_generator(bpath)
    pca_for(str(bpath), G=G, samples=20_000, batch=5000)
    M, note = express(load_motion("demo"), G, str(bpath))
    assert (
        M.cfg.w_dim == 512 and "its 128-d first latent carried from the 512-d w" in note and "no PCA mean" not in note
    )
    frames = list(R.render_frames(M, G, 5, videos=2, seed=3, noise="off"))
    with torch.no_grad():
        w1 = draw_w1(G, 2, R._generator(3, 0))
        first = R.to_uint8(synthesize(G, w1))
    assert torch.equal(frames[0], first)  # frame 0 is the image of the target's own first latent
    assert (frames[4].float() - frames[0].float()).abs().mean() > 1.0  # and the video moves
    with pytest.raises(MocohdError, match="cannot be saved"):
        save_motion(tmp_path / "no.safetensors", M)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--motion", "nope"], "unknown motion model 'nope'"),
        (["--image", "dmeo"], "did you mean demo"),
        (["--noise", "loud"], "noise must be one of"),
        (["--dtype", "fp8"], "dtype must be one of"),
    ],
)
def test_bad_render_options_are_one_line(tmp_path, capsys, args, message):
    code, _, err = run(capsys, "render", str(tmp_path / "v.mp4"), "-n", "2", *args)
    usage = "must be one of" in message  # a value that can never work: exit 2
    assert code == (2 if usage else 1) and message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_render_default_models(tmp_path, capsys):
    code, out, err = run(
        capsys, "render", str(tmp_path / "demo.mp4"), "-n", "3", "--videos", "2", "--grid", "--device", "cpu"
    )
    assert code == 0, err
    meta, frames = _read_video(tmp_path / "demo.mp4")
    assert len(frames) == 3 and tuple(meta["size"]) == (128, 64)  # two 64 px tiles side by side
    assert "frames/s" in out


def test_render_size_makes_small_frames_and_is_refused_beyond_the_generator(tmp_path, capsys):
    code, out, err = run(capsys, "render", str(tmp_path / "small.mp4"), "-n", "3", "--size", "16", "--device", "cpu")
    assert code == 0, err
    meta, frames = _read_video(tmp_path / "small.mp4")
    assert len(frames) == 3 and tuple(meta["size"]) == (16, 16) and "frames of 16x16" in out
    code, _, err = run(capsys, "render", str(tmp_path / "big.mp4"), "-n", "3", "--size", "128", "--device", "cpu")
    assert code == 2 and err.count("\n") == 1 and "size must be a power of two in 4..64" in err
    assert "'demo' makes 64 px frames" in err and not (tmp_path / "big.mp4").exists()


def test_a_render_asked_to_stop_is_cancelled_and_leaves_nothing(tmp_path, pair):
    g, m = pair
    asked = []

    def should_stop():  # says stop at its third question (a batch of frames each)
        asked.append(1)
        return len(asked) >= 3

    config = R.RenderConfig(motion=m, image=g, frames=40, batch=2, device="cpu")
    out = tmp_path / "out"
    with pytest.raises(Cancelled, match="cancelled: nothing written"):
        R.render(out / "v.mp4", config, should_stop=should_stop)
    assert len(asked) == 3 and list(out.iterdir()) == []  # no video, no temporary
    assert R.render(out / "v.mp4", config, should_stop=lambda: False).frames == 40


def test_failure_mid_stream_leaves_nothing(tmp_path):
    def frames():
        for i in range(5):
            if i == 3:
                raise RuntimeError("generator failed")
            yield torch.zeros(1, 8, 8, 3, dtype=torch.uint8)

    with pytest.raises(RuntimeError, match="generator failed"):
        R.write_videos(frames(), tmp_path / "v.mp4", "mp4", 10, 1, False)
    assert list(tmp_path.iterdir()) == []


def test_odd_sizes_are_padded_for_yuv420p(tmp_path):
    frames = (torch.full((1, 15, 21, 3), 100 + i, dtype=torch.uint8) for i in range(4))
    paths, count, size = R.write_videos(frames, tmp_path / "odd.mp4", "mp4", 10, 1, False)
    meta, read = _read_video(paths[0])
    assert count == 4 and size == (15, 21) and tuple(meta["size"]) == (22, 16)
    assert abs(int(read[2][7, 10, 0]) - 102) <= 3


def test_bad_output_names(tmp_path):
    with pytest.raises(MocohdError, match="cannot tell the format"):
        R.output_format(tmp_path / "v.avi", None)
    assert R.output_format(tmp_path / "v.avi", "mp4") == "mp4"
    with pytest.raises(MocohdError, match="format must be one of mp4, webm, gif, png, got 'mov'"):
        R.output_format(tmp_path / "v.mp4", "mov")


# ----------------------------------------------------------------------------
# Output rules, failures, signals, limits.


def _cli(capsys, tmp_path, pair, out, *args):
    g, m = pair
    return run(capsys, "render", str(out), "--motion", str(m), "--image", str(g), "--device", "cpu", *args)


def _one_line(err):
    """One line of error (besides the progress lines a non-terminal stderr gets), naming no temporary file."""
    lines = [s for s in err.strip().splitlines() if not s.startswith("rendering: ")]
    return len(lines) == 1 and "Traceback" not in err and "partial" not in err


def test_a_users_folder_is_never_removed(tmp_path, pair, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    (mine / "000000.png").write_bytes(b"my own frame")
    code, out, err = _cli(capsys, tmp_path, pair, mine, "--format", "png", "-n", "2")
    assert code == 1 and _one_line(err) and "holds files that are not a previous render's frames" in err, err
    assert sorted(p.name for p in mine.iterdir()) == ["000000.png", "notes.txt"]
    assert (mine / "000000.png").read_bytes() == b"my own frame" and "wrote" not in out


def test_a_previous_renders_frames_are_replaced(tmp_path, pair, capsys):
    frames_dir = tmp_path / "frames"
    assert _cli(capsys, tmp_path, pair, frames_dir, "-n", "5")[0] == 0
    assert sorted(p.name for p in frames_dir.iterdir()) == [".mocohd-frames"] + [f"{i:06d}.png" for i in range(5)]
    code, _, err = _cli(capsys, tmp_path, pair, frames_dir, "-n", "3", "--seed", "1")
    assert code == 0, err
    assert sorted(p.name for p in frames_dir.iterdir()) == [".mocohd-frames"] + [f"{i:06d}.png" for i in range(3)]
    assert _cli(capsys, tmp_path, pair, tmp_path / "fresh", "-n", "3", "--seed", "1")[0] == 0
    for i in range(3):
        assert (frames_dir / f"{i:06d}.png").read_bytes() == (tmp_path / "fresh" / f"{i:06d}.png").read_bytes()
    # once the user puts a file of their own in it, it is theirs
    (frames_dir / "keep.txt").write_text("mine")
    code, _, err = _cli(capsys, tmp_path, pair, frames_dir, "-n", "2")
    assert code == 1 and "keep.txt" in err and len(list(frames_dir.glob("*.png"))) == 3


def test_frames_replaced_halfway_are_never_taken_for_a_complete_render(tmp_path, pair, capsys, monkeypatch):
    frames_dir = tmp_path / "frames"
    assert _cli(capsys, tmp_path, pair, frames_dir, "-n", "4")[0] == 0
    real_replace, moved = os.replace, []

    def cut_after_one_frame(src, dst):  # a kill (here: a failure) while the frames are moved in
        if str(dst).endswith(".png") and moved:
            raise OSError(28, "No space left on device")
        moved.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", cut_after_one_frame)
    code, _, err = _cli(capsys, tmp_path, pair, frames_dir, "-n", "4", "--seed", "1")
    monkeypatch.setattr(os, "replace", real_replace)
    assert code == 1 and "no space left on device" in err
    assert not (frames_dir / ".mocohd-frames").exists()  # old and new frames mixed: no longer marked as ours
    code, _, err = _cli(capsys, tmp_path, pair, frames_dir, "-n", "2")
    assert code == 1 and "not a previous render's frames" in err and len(list(frames_dir.glob("*.png"))) == 4


def test_empty_and_symlinked_folders_and_dot(tmp_path, pair, capsys, monkeypatch):
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    code, _, err = _cli(capsys, tmp_path, pair, link, "-n", "2")
    assert code == 0, err
    assert link.is_symlink() and sorted(p.name for p in target.iterdir()) == [
        ".mocohd-frames",
        "000000.png",
        "000001.png",
    ]
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    code, _, err = _cli(capsys, tmp_path, pair, ".", "-n", "2")
    assert code == 0, err
    assert sorted(p.name for p in here.iterdir()) == [".mocohd-frames", "000000.png", "000001.png"]
    (here / "notes.txt").write_text("mine")
    code, _, err = _cli(capsys, tmp_path, pair, ".", "-n", "2")
    assert code == 1 and _one_line(err) and "notes.txt" in err


def test_a_folder_is_never_replaced_by_a_file_nor_a_file_by_a_folder(tmp_path, pair, capsys):
    (tmp_path / "d.mp4").mkdir()
    (tmp_path / "d.mp4" / "x").write_text("mine")
    # checked before the models are loaded: the output is what is reported, not the unknown motion model
    code, _, err = run(capsys, "render", str(tmp_path / "d.mp4"), "--motion", "nope", "-n", "2")
    assert code == 1 and _one_line(err) and f"'{tmp_path / 'd.mp4'}': it is a folder" in err, err
    (tmp_path / "f").write_text("mine")
    code, _, err = _cli(capsys, tmp_path, pair, tmp_path / "f", "--format", "png", "-n", "2")
    assert code == 1 and _one_line(err) and "it is a file, not a folder" in err, err
    code, _, err = _cli(capsys, tmp_path, pair, tmp_path / "f" / "v.mp4", "-n", "2")
    assert code == 1 and _one_line(err) and f"'{tmp_path / 'f'}' is not a folder" in err, err
    assert (tmp_path / "f").read_text() == "mine" and (tmp_path / "d.mp4" / "x").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".safetensors")) == ["d.mp4", "f"]


def test_an_unwritable_folder_is_one_line(tmp_path, pair, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro else real_access(p, mode, **kw))
    code, _, err = _cli(capsys, tmp_path, pair, ro / "v.mp4", "-n", "2")
    assert code == 1 and _one_line(err) and f"cannot write '{ro / 'v.mp4'}': permission denied in '{ro}'" in err, err
    assert list(ro.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_for_real(tmp_path, pair, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = _cli(capsys, tmp_path, pair, ro / "v.mp4", "-n", "2")
    finally:
        ro.chmod(0o755)
    assert code == 1 and _one_line(err) and "permission denied" in err


@pytest.mark.parametrize(
    "name,fmt",
    [("f.mp4", "gif"), ("m.gif", "mp4"), ("m2.gif", "webm"), ("m3.webm", "gif"), ("m4.png", "mp4"), ("v.mp4", "png")],
)
def test_a_format_that_contradicts_the_name_is_a_usage_error(tmp_path, pair, capsys, name, fmt):
    code, out, err = _cli(capsys, tmp_path, pair, tmp_path / "o" / name, "--format", fmt, "-n", "2")
    assert code == 2 and _one_line(err) and f"the name '{name}' says" in err, err
    assert not (tmp_path / "o").exists()


def test_png_names_are_folders(tmp_path, pair, capsys):
    for name, args in (("out.png", ["--format", "png"]), ("out2.png", []), ("frames", ["--format", "png"])):
        code, _, err = _cli(capsys, tmp_path, pair, tmp_path / name, "-n", "2", *args)
        assert code == 0, err
        assert (tmp_path / name / "000001.png").is_file()


def test_encoder_failure_is_one_line_and_keeps_the_old_file(tmp_path, pair, capsys, monkeypatch):
    exe = tmp_path / "ffmpeg"
    exe.write_text(
        '#!/bin/sh\nfor a; do out=$a; done; head -c 100 > "$out"; cat > /dev/null\n'
        'echo "av_interleaved_write_frame(): No space left on device" >&2; exit 1\n'
    )
    exe.chmod(0o755)
    (tmp_path / "full.gif").write_bytes(b"old")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(exe))
    code, out, err = _cli(capsys, tmp_path, pair, tmp_path / "full.gif", "-n", "3")
    assert code == 1 and _one_line(err) and f"cannot write '{tmp_path / 'full.gif'}': no space left on device" in err, (
        err
    )
    assert "wrote" not in out and (tmp_path / "full.gif").read_bytes() == b"old"
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--fps", "0"], "fps must be between 0.01 and 1000 for mp4, got 0"),
        (["--fps", "-5"], "fps must be between"),
        (["--fps", "nan"], "got nan"),
        (["--fps", "inf"], "got inf"),
        (["--fps", "101", "--format", "gif"], "for gif (GIF frame delays are whole hundredths of a second)"),
        (["--truncation", "-1"], "truncation must be a finite number >= 0"),
        (["--truncation", "nan"], "truncation must be a finite number >= 0"),
        (["--seed", "-1"], "seed must be in 0..1099511627775, got -1"),
        (["--seed", str(2**40)], "seed must be in 0..1099511627775"),
        (["-k", "1000000", "--grid"], "a grid holds at most 1024 videos"),
        (["-k", "1000"], "each video is its own file and encoder: at most 256"),
        (["-k", "0"], "videos must be at least 1, got 0"),
        (["-n", "0"], "frames must be at least 1"),
        (["--interpolate", "0"], "interpolate must be at least 1"),
        (["--batch", "0"], "batch must be at least 1"),
        (["--size", "48"], "size must be a power of two, at least 4, got 48"),
        (["--size", "2"], "size must be a power of two, at least 4, got 2"),
    ],
)
def test_numbers_are_checked_before_anything_is_loaded(tmp_path, capsys, args, message):
    name = "v.gif" if "gif" in args else "v.mp4"
    code, _, err = run(capsys, "render", str(tmp_path / name), "--motion", "nope", *args)
    assert code == 2 and _one_line(err) and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_render_frames_checks_its_arguments_when_called(pair):
    g, m = pair
    G, M = load_image_generator(g), load_motion(m)
    for kw, message in (
        (dict(seed=-1), "seed"),
        (dict(truncation=float("nan")), "truncation"),
        (dict(batch=0), "batch"),
        (dict(videos=300_000), "at most 262144 videos of this size"),
        (dict(frames=2.5), "whole number"),
    ):
        with pytest.raises(ValueError, match=message):
            R.render_frames(M, G, **{"frames": 3, **kw})  # no frame asked for yet: it is the call that fails


def test_piped_progress_is_plain_lines(tmp_path, pair, capsys):
    code, out, err = _cli(capsys, tmp_path, pair, tmp_path / "v.mp4", "-n", "30")
    assert code == 0, err
    lines = [s for s in err.splitlines() if s.startswith("rendering: ")]
    assert len(lines) >= 3 and lines[-1].startswith("rendering: 30/30 frames, ") and lines[-1].endswith(" frames/s")


@pytest.mark.parametrize("sig,code,word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_a_signal_mid_render_leaves_nothing_and_says_so(tmp_path, pair, sig, code, word):
    g, m = pair
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "v.mp4").write_bytes(b"previous")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mocohd_cli",
            "render",
            str(outdir / "v.mp4"),
            "--motion",
            str(m),
            "--image",
            str(g),
            "--device",
            "cpu",
            "-n",
            "100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(outdir.glob(".v.partial-*.mp4")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert list(outdir.glob(".v.partial-*.mp4")), proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert err.strip() == f"{word}: nothing written"
    assert [p.name for p in outdir.iterdir()] == ["v.mp4"] and (outdir / "v.mp4").read_bytes() == b"previous"


def _latent_of(G, n=2, plus=False, seed=0):
    """A Latent of ``G`` made from known w's (what `mocohd invert` would store), with noise maps."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = G.mapping(torch.randn(n, G.z_dim, generator=g))
    ws = w[:, None].repeat(1, G.num_ws, 1)
    if plus:
        ws = ws + 0.3 * torch.randn(ws.shape, generator=g)
    noise = G.synthesis.make_noise(n, generator=g)
    return Latent(
        ws, noise, "w+" if plus else "w", dict(image_name=G.identity["name"], image_sha256=G.identity["weights_sha256"])
    )


@pytest.mark.parametrize("plus", [False, True])
def test_render_start_begins_at_the_latents_image_and_moves(tmp_path, pair, capsys, plus):
    g, m = pair
    G = load_image_generator(g)
    latent = _latent_of(G, n=2, plus=plus)
    save_latent(latent, "me")
    code, out, err = run(
        capsys,
        "render",
        str(tmp_path / "v"),
        "--motion",
        str(m),
        "--image",
        str(g),
        "-n",
        "4",
        "--start",
        "me",
        "--grid",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert re.search(r"\b4 frames of 32x16\b", out)  # one video per latent, side by side (not "2 frames of")
    frames = [iio.imread(p) for p in sorted((tmp_path / "v").glob("*.png"))]
    with torch.no_grad():
        first = R.to_uint8(G.synthesis(latent.ws, noise=latent.noise)).numpy()
    want = np.concatenate(list(first), axis=1)  # frame 0 is each latent's image (batched rounding: at most 1 level)
    assert np.abs(frames[0].astype(int) - want.astype(int)).max() <= 1 and (frames[0] == want).mean() > 0.99
    assert np.abs(frames[3].astype(float) - frames[0].astype(float)).mean() > 1.0  # and the videos move
    # three videos from two latents: used in turn
    r = R.render(tmp_path / "w.mp4", R.RenderConfig(motion=m, image=g, frames=2, videos=3, start=["me"], device="cpu"))
    assert r.videos == 3 and len(r.paths) == 3


def test_a_start_latent_of_another_generator_is_refused(tmp_path, pair, capsys):
    g, m = pair
    other = randomized_generator(tiny_config(16, z_dim=16, w_dim=16), seed=9)
    opath = tmp_path / "other.safetensors"
    save_canonical(opath, other)
    save_latent(_latent_of(load_image_generator(opath)), "theirs")
    code, _, err = run(
        capsys, "render", str(tmp_path / "v.mp4"), "--motion", str(m), "--image", str(g), "-n", "2", "--start", "theirs"
    )
    assert code == 1 and "belongs to the image generator 'other'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(
        capsys, "render", str(tmp_path / "v.mp4"), "--motion", str(m), "--image", str(g), "-n", "2", "--start", "nobody"
    )
    assert code == 1 and "unknown latent model 'nobody'" in err


def test_render_start_from_a_photo_inverts_it_first_and_keeps_its_latent(tmp_path, isolated_store, one_thread):

    g = tmp_path / "tone.safetensors"
    save_canonical(g, trained_looking_generator(16))
    G = load_image_generator(g)
    basis = fit_pca(G, samples=2000, batch=500)
    torch.manual_seed(0)
    M = MotionGenerator(
        MotionConfig(w_dim=32, noise_dim=32, h_dim=8, n_pca=8, w_residual=1.0), basis.components, basis.stdev
    )
    m = tmp_path / "m.safetensors"
    save_motion(m, M, image={"image_name": "tone", "image_sha256": G.identity["weights_sha256"]})
    latent = _latent_of(G, n=1)
    with torch.no_grad():
        photo = R.to_uint8(G.synthesis(latent.ws, noise=latent.noise))[0].numpy()
    iio.imwrite(tmp_path / "me.png", photo)
    notes = []
    r = R.render(
        tmp_path / "v",
        R.RenderConfig(
            motion=m,
            image=g,
            frames=3,
            start=[str(tmp_path / "me.png")],
            device="cpu",
            invert_options=dict(steps=150, loss="pixel"),
        ),
        on_note=notes.append,
    )
    assert (
        r.videos == 1
        and any("inverting me.png" in n for n in notes)
        and any("stored its latent as 'me'" in n for n in notes)
    )
    first = iio.imread(sorted((tmp_path / "v").glob("*.png"))[0]).astype(float)
    mse = ((first - photo.astype(float)) ** 2).mean()
    assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 25  # frame 0 is the photo, within the inversion's error
    assert (isolated_store / "latent" / "me.safetensors").is_file()


def test_fewer_videos_than_start_latents_is_refused(tmp_path, pair, capsys):
    """`--start a --start b --start c --videos 2` would drop c: refused (exit 2), as
    the starts are explicit and a photo among them costs an inversion; more videos take them in turn."""
    g, m = pair
    G = load_image_generator(g)
    for k, name in enumerate("abc"):
        save_latent(_latent_of(G, n=1, seed=k), name)
    starts = ["--start", "a", "--start", "b", "--start", "c"]
    code, out, err = run(
        capsys,
        "render",
        str(tmp_path / "v.mp4"),
        "--motion",
        str(m),
        "--image",
        str(g),
        "-n",
        "2",
        *starts,
        "--videos",
        "2",
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "3 start latents but 2 videos" in err and "1 would not be used" in err and "--videos 3" in err
    assert not list(tmp_path.glob("v*.mp4"))
    r = R.render(tmp_path / "w.mp4", R.RenderConfig(motion=m, image=g, frames=2, start=["a", "b", "c"], device="cpu"))
    assert r.videos == 3 and len(r.paths) == 3


def test_a_photo_start_without_vgg16_says_what_render_can_do(tmp_path, pair, capsys, isolated_store):
    """`mocohd render` has no --loss; the advice is to invert with the pixel loss first."""
    g, m = pair
    iio.imwrite(tmp_path / "me.png", np.full((16, 16, 3), 128, np.uint8))
    code, _, err = run(
        capsys,
        "render",
        str(tmp_path / "v.mp4"),
        "--motion",
        str(m),
        "--image",
        str(g),
        "-n",
        "2",
        "--start",
        str(tmp_path / "me.png"),
    )
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "mocohd fetch vgg16" in err and f"mocohd invert {tmp_path / 'me.png'} --image {g} --loss pixel" in err
    assert "mocohd render --start me" in err and "use the pixel loss" not in err
    assert not (isolated_store / "latent").exists() and not (tmp_path / "v.mp4").exists()


def test_a_latent_of_a_namesake_generator_shows_both_hashes(tmp_path, pair, capsys):
    """Two generators called 'g' (other weights): the message tells them apart."""
    g, m = pair
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / "g.safetensors"
    save_canonical(other, randomized_generator(tiny_config(16, z_dim=16, w_dim=16), seed=9))
    save_latent(_latent_of(load_image_generator(other)), "theirs")
    code, _, err = run(
        capsys, "render", str(tmp_path / "v.mp4"), "--motion", str(m), "--image", str(g), "-n", "2", "--start", "theirs"
    )
    mine, theirs = (load_image_generator(p).identity["weights_sha256"][:12] for p in (g, other))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"'g' (weights {theirs}), not to 'g' (weights {mine})" in err
