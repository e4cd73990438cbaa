"""Rendering: frames, formats, grid, interpolation, seeds, cross-domain, failures."""

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from mocohd_cli import MocohdError, render as R
from mocohd_cli.formats import canonical
from mocohd_cli.models import load_image_generator
from mocohd_cli.motion import MotionConfig, MotionGenerator, load_motion, save_motion
from mocohd_cli.pca import fit_pca

from .conftest import randomized_generator, tiny_config
from .test_cli import run


def _read_video(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for f in reader]
    return meta, frames


@pytest.fixture
def pair(tmp_path):
    """A tiny image generator (w 16) and a motion model trained 'with' it."""
    G = randomized_generator(tiny_config(16, z_dim=16, w_dim=16))
    gpath = tmp_path / "g.safetensors"
    h = canonical.save_model(gpath, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
    basis = fit_pca(G, samples=2000, batch=500)
    torch.manual_seed(0)
    M = MotionGenerator(MotionConfig(w_dim=16, noise_dim=16, h_dim=8, n_pca=8, w_residual=1.0), basis.components, basis.stdev)
    mpath = tmp_path / "m.safetensors"
    save_motion(mpath, M, image={"image_name": "g", "image_sha256": h.weights_sha256})
    return gpath, mpath


def test_mp4_has_the_frames_size_and_fps(tmp_path, pair):
    g, m = pair
    r = R.render(tmp_path / "v.mp4", motion=m, image=g, frames=9, fps=15, device="cpu")
    meta, frames = _read_video(r.paths[0])
    assert r.frames == 9 and len(frames) == 9
    assert tuple(meta["size"]) == (16, 16) and meta["fps"] == 15
    assert meta["codec"] == "h264" and "yuv420p" in meta["pix_fmt"]


def test_interpolation_frame_count(tmp_path, pair):
    g, m = pair
    r = R.render(tmp_path / "v.mp4", motion=m, image=g, frames=6, interpolate=2, device="cpu")
    assert r.frames == 11 and len(_read_video(r.paths[0])[1]) == 11
    G, M = load_image_generator(g), load_motion(m)
    w1 = torch.randn(2, 16)
    with torch.no_grad():
        key = torch.cat(list(R.trajectory_chunks(M, w1, 6, chunk=2, generator=torch.Generator().manual_seed(0))), 1)
        mid = torch.cat(list(R.trajectory_chunks(M, w1, 6, interpolate=2, chunk=2, generator=torch.Generator().manual_seed(0))), 1)
    assert mid.shape[1] == 11
    torch.testing.assert_close(mid[:, ::2], key)
    torch.testing.assert_close(mid[:, 1::2], (key[:, :-1] + key[:, 1:]) / 2)
    del G


@pytest.mark.parametrize("name,fmt", [("v.gif", "gif"), ("v.webm", "webm"), ("frames", "png")])
def test_other_formats(tmp_path, pair, name, fmt):
    g, m = pair
    r = R.render(tmp_path / name, motion=m, image=g, frames=5, device="cpu")
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
    r = R.render(tmp_path / "v.mp4", motion=m, image=g, frames=4, videos=3, device="cpu")
    assert [p.name for p in r.paths] == ["v_000.mp4", "v_001.mp4", "v_002.mp4"]
    r = R.render(tmp_path / "grid", motion=m, image=g, frames=4, videos=3, grid=True, device="cpu")
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
    # frames do not depend on how many are synthesised at once
    assert torch.equal(frames(3, batch=1), frames(3, batch=5))
    assert torch.equal(frames(3, batch=1, noise="random"), frames(3, batch=5, noise="random"))
    # fixed noise: the same maps for every frame of a video; random: new ones
    r1, r2 = frames(3, noise="random"), frames(3, noise="off")
    assert not torch.equal(a, r1) and not torch.equal(a, r2)


def test_cross_domain_re_expression(tmp_path, pair):
    g, m = pair
    other = randomized_generator(tiny_config(16, z_dim=16, w_dim=16), seed=9)
    opath = tmp_path / "other.safetensors"
    canonical.save_model(opath, other.state_dict(), kind="image", family="stylegan2", config=other.cfg.to_dict())
    r = R.render(tmp_path / "x", motion=m, image=opath, frames=4, device="cpu", noise="off")
    assert r.cross_domain and "re-expressed" in r.cross_domain
    # ... in the basis of 'other', cached in the store on first use
    from mocohd_cli.pca import find_cached, PCABasis

    cached = find_cached(canonical.read_header(opath).weights_sha256)
    assert cached is not None
    basis = PCABasis.load(cached)
    G, M = load_image_generator(opath), load_motion(m).retarget(basis.components, basis.stdev)
    expected = [f[0].numpy() for f in R.render_frames(M, G, 4, noise="off")]
    got = [iio.imread(p) for p in sorted((tmp_path / "x").glob("*.png"))]
    for e, o in zip(expected, got):
        np.testing.assert_array_equal(e, o)
    # the same pair as trained: nothing to re-express
    assert R.render(tmp_path / "y", motion=m, image=g, frames=2, device="cpu").cross_domain is None


def test_mismatched_latent_sizes_are_one_line(tmp_path, pair, capsys):
    _, m = pair
    code, _, err = run(capsys, "render", str(tmp_path / "v.mp4"), "--motion", str(m), "--image", "demo", "-n", "2")
    assert code == 1 and "16-d latent space" in err and "128-d" in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.mp4"))


@pytest.mark.parametrize("args,message", [
    (["--motion", "nope"], "unknown motion model 'nope'"),
    (["--image", "dmeo"], "did you mean demo"),
    (["--noise", "loud"], "--noise must be one of"),
    (["--dtype", "fp8"], "--dtype must be one of"),
])
def test_bad_render_options_are_one_line(tmp_path, capsys, args, message):
    code, _, err = run(capsys, "render", str(tmp_path / "v.mp4"), "-n", "2", *args)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_render_default_models(tmp_path, capsys):
    code, out, err = run(capsys, "render", str(tmp_path / "demo.mp4"), "-n", "3", "--videos", "2", "--grid", "--device", "cpu")
    assert code == 0, err
    meta, frames = _read_video(tmp_path / "demo.mp4")
    assert len(frames) == 3 and tuple(meta["size"]) == (128, 64)  # two 64 px tiles side by side
    assert "frames/s" in out


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
    with pytest.raises(MocohdError, match="--format must be one of"):
        R.output_format(tmp_path / "v.mp4", "mov")
