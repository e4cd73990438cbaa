"""Loops and keyframe paths (mocohd_cli.paths; render --loop, --keyframes): keyframes are hit
exactly, easing and slerp behave, a loop's closing step is an ordinary step and keeps the motion's
statistics, same seed same frames, bad input is one line and exit 2 before any work."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from mocohd_cli import paths as P, render as R
from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.frames import draw_w1
from mocohd_cli.loaders import load_image_generator
from mocohd_cli.loaders.latents import Latent, save_latent
from mocohd_cli.loaders.motion_models import load_motion
from mocohd_cli.motion import MotionConfig, MotionGenerator
from mocohd_cli.motion.stats import motion_stats
from mocohd_cli.pca import fit_pca

from .conftest import randomized_generator, run, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny forwards (tests/conftest.py)


def _walk(M, w1, frames, loop, seed=1, **kw):
    with torch.no_grad():
        chunks = (P.loop_chunks if loop else R.trajectory_chunks)(M, w1, frames, generator=R._generator(seed, 1), **kw)
        return torch.cat(list(chunks), dim=1)


def _latent(G, seed=0, plus=False):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, generator=g))[:, None].repeat(1, G.num_ws, 1)
    if plus:
        ws = ws + 0.3 * torch.randn(ws.shape, generator=g)
    image = dict(image_name=G.identity["name"], image_sha256=G.identity["weights_sha256"])
    return Latent(ws, None, "w+" if plus else "w", image)


# ----------------------------------------------------------------------------
# Geometry


@pytest.mark.parametrize("easing", P.EASINGS)
def test_easing_endpoints(easing):
    u = torch.linspace(0, 1, 101, dtype=torch.float64)
    e = P.ease(easing, u)
    assert e[0] == 0 and e[-1] == 1 and bool((e.diff() >= 0).all())  # 0 -> 0, 1 -> 1 exactly, never back
    if easing != "linear":  # at rest at both ends: a keyframe is held, not passed through
        h = 1e-4
        ends = P.ease(easing, torch.tensor([h, 1 - h], dtype=torch.float64))
        assert ends[0] / h < 1e-3 and (1 - ends[1]) / h < 1e-3
        assert abs(float(P.ease(easing, torch.tensor(0.5))) - 0.5) < 1e-6  # symmetric
    with pytest.raises(UsageError, match="easing must be one of linear, ease-in-out, cubic, got 'bounce'"):
        P.ease("bounce", u)


def test_slerp_stays_on_the_sphere_for_z():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 512, generator=g, dtype=torch.float64)
    b = b * a.norm() / b.norm()  # one length: the sphere
    t = torch.linspace(0, 1, 33, dtype=torch.float64)[:, None]
    path = P.slerp(a, b, t)
    torch.testing.assert_close(path.norm(dim=1), a.norm().expand(33))
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert (torch.lerp(a, b, 0.5).norm() / a.norm()) < 0.75  # what a straight line does instead
    # evenly along the great circle
    angles = torch.acos((path[1:] * path[:-1]).sum(1) / a.norm() ** 2)
    torch.testing.assert_close(angles, angles.mean().expand(32))
    # seeds as keyframes in z: their z's keep their lengths, changing monotonically between them
    G = randomized_generator(tiny_config(16, z_dim=64, w_dim=16))
    track = P.KeyframePath(keys="3,8,5", path="slerp", space="z", seconds=1).track(G, [3, 8, 5], fps=10)
    z = track.latents(torch.arange(track.frames))
    norms = z.norm(dim=1)
    for k in range(2):
        seg = norms[10 * k : 10 * k + 11]
        lo, hi = sorted([float(seg[0]), float(seg[-1])])
        assert lo - 1e-4 <= float(seg.min()) and float(seg.max()) <= hi + 1e-4


# ----------------------------------------------------------------------------
# Keyframe paths


@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize("kind", P.PATHS)
def test_a_keyframe_path_passes_through_its_keyframes(pair, kind, closed):
    G = load_image_generator(pair[0])
    plus = _latent(G, seed=4, plus=True)
    keys = [3, 8, plus, 5]
    path = P.KeyframePath(keys=keys, path=kind, easing="ease-in-out", seconds=0.5)
    track = path.track(G, P.read_keyframes(path), fps=12, loop=closed)
    assert track.per_segment == 6 and track.frames == (24 if closed else 19)
    ws = track(torch.arange(track.frames))
    assert ws.shape == (track.frames, G.num_ws, 16)  # a w+ keyframe: every keyframe one w per layer
    with torch.no_grad():
        seeds = {k: draw_w1(G, 1, torch.Generator().manual_seed(k))[0] for k in (3, 8, 5)}
    want = [seeds[3], seeds[8], plus.ws[0], seeds[5]]
    for frame, w in zip(track.keyframe_frames, want, strict=True):
        assert torch.equal(ws[frame], w.expand(G.num_ws, -1))  # exactly the keyframe
    assert track.keyframe_frames == [0, 6, 12, 18]
    between = ws[1:6]
    assert not any(torch.equal(between[i], ws[0]) for i in range(5))  # and it moves in between
    if closed:  # the step back to the first keyframe is a step like the others
        steps = torch.cat([ws, ws[:1]]).diff(dim=0).flatten(1).norm(dim=1)
        assert steps[-1] <= steps[:-1].max()


def test_a_path_in_z_maps_every_frame(pair):
    G = load_image_generator(pair[0])
    path = P.KeyframePath(keys=[1, 2], path="slerp", space="z", seconds=1)
    track = path.track(G, [1, 2], fps=8)
    z = track.latents(torch.arange(track.frames))
    z1 = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1))[0]
    assert torch.equal(z[0], z1)
    with torch.no_grad():
        torch.testing.assert_close(track(torch.arange(track.frames)), G.mapping(z))
    with pytest.raises(UsageError, match="a path in z runs through seeds only; keyframe 'me'"):
        P.KeyframePath(keys="1,me", space="z")


def test_keyframe_frames_are_the_seeds_first_frames(tmp_path, pair):
    """Keyframe K is the first frame of `render --seed K` (here with no noise, which the seed also draws)."""
    g, m = pair
    r = R.render(
        tmp_path / "kf",
        R.RenderConfig(
            motion=m, image=g, keyframes=P.KeyframePath(keys="7,2", seconds=0.5), fps=8, noise="off", device="cpu"
        ),
    )
    assert r.frames == 5
    frames = [iio.imread(p).astype(int) for p in sorted((tmp_path / "kf").glob("*.png"))]
    for k, frame in ((7, frames[0]), (2, frames[4])):
        R.render(tmp_path / f"s{k}", R.RenderConfig(motion=m, image=g, frames=1, seed=k, noise="off", device="cpu"))
        alone = iio.imread(tmp_path / f"s{k}" / "000000.png").astype(int)
        assert np.abs(frame - alone).max() <= 1  # batched rounding: at most one level


def test_motion_rides_on_the_path(pair):
    G, M = load_image_generator(pair[0]), load_motion(pair[1])
    path = P.KeyframePath(keys=[4, 9, 6], seconds=1, motion_weight=0.5)
    track = path.track(G, [4, 9, 6], fps=5)
    w1 = track.first()[None].expand(2, -1)
    with torch.no_grad():
        ws = torch.cat(list(P.walk(M, w1, track.frames, 1, R._generator(0, 1), R.trajectory_chunks, False, track)), 1)
    motion = _walk(M, w1, track.frames, loop=False, seed=0)
    alone = track(torch.arange(track.frames))
    torch.testing.assert_close(ws, alone[None] + 0.5 * (motion - w1[:, None]))
    assert not torch.equal(ws[0], ws[1])  # the videos' motions differ
    # closed, the motion loops with it: the last frame flows into the first
    closed = path.track(G, [4, 9, 6], fps=5, loop=True)
    with torch.no_grad():
        ws = torch.cat(list(P.walk(M, w1, closed.frames, 1, R._generator(0, 1), R.trajectory_chunks, True, closed)), 1)
    steps = torch.cat([ws, ws[:, :1]], dim=1).diff(dim=1).norm(dim=2)
    assert ws.shape[1] == 15 and bool((steps[:, -1] <= steps[:, :-1].max(dim=1).values).all())


# ----------------------------------------------------------------------------
# Loops


def _seam(x):
    """[V, N, ...] cyclic -> (closing step [V], the other steps [V, N - 1]) in Euclidean distance."""
    x = x.flatten(2).double()
    steps = torch.cat([x, x[:, :1]], dim=1).diff(dim=1).norm(dim=2)
    return steps[:, -1], steps[:, :-1]


def test_a_loops_closing_step_is_an_ordinary_step(pair):
    G, M = load_image_generator(pair[0]), load_motion(pair[1])
    videos, n = 8, 24
    w1 = draw_w1(G, videos, R._generator(0, 0))
    loop, open_ws = _walk(M, w1, n, loop=True), _walk(M, w1, n, loop=False)
    assert loop.shape == open_ws.shape == (videos, n, 16) and torch.equal(loop[:, 0], w1)
    close, other = _seam(loop)
    assert bool((close <= other.max(dim=1).values).all())  # in w, no video's closing step is its largest
    assert close.mean() <= other.flatten().quantile(0.95)
    jump, _ = _seam(open_ws)
    assert bool((jump > other.max(dim=1).values).all())  # what the open render would do, for scale
    # in pixels
    frames = torch.stack(list(R.render_frames(M, G, n, videos=videos, loop=True, noise="off")), dim=1).float()
    close, other = _seam(frames)
    assert bool((close <= other.max(dim=1).values).all()) and close.mean() <= other.flatten().quantile(0.95)


def test_a_loop_keeps_the_motions_statistics(pair):
    """A motion that drifts about half a step a frame, like the shipped demo's: a loop cannot
    drift, and keeps the step size and the energy along the principal directions all the same."""
    G, M = load_image_generator(pair[0]), load_motion(pair[1])
    with torch.no_grad():
        M.b.copy_(0.007 * torch.randn(8, generator=torch.Generator().manual_seed(5)))
    w1 = draw_w1(G, 16, R._generator(0, 0))
    n = 48
    open_ws = _walk(M, w1, n, loop=False)
    d = open_ws.diff(dim=1)
    assert 0.4 < float((d.mean(dim=1).norm(dim=1) / d.norm(dim=2).square().mean(dim=1).sqrt()).mean()) < 0.6
    directions = M.pca_components[:4]
    b = motion_stats(open_ws, directions)

    def change(**kw):
        loop = _walk(M, w1, n, loop=True, **kw)
        a = motion_stats(torch.cat([loop, loop[:, :1]], dim=1), directions)
        return a.step / b.step - 1, a.on_span / b.on_span - 1, float((a.shares - b.shares).abs().max() / b.on_span)

    step, on_span, shares = change()
    assert abs(step) < 0.1 and abs(on_span) < 0.1 and shares < 0.1
    assert change(keep_speed=False)[0] < -0.1  # without giving back what the bridge takes, it would be slower


def test_an_oscillator_banks_periods_fit_the_loop(pair):
    """Oscillators dominate this motion: the loop closes them (periods fitted to whole cycles) and
    keeps the periods it moves at within 10% of the open render's."""
    G = load_image_generator(pair[0])
    basis = fit_pca(G, samples=2000, batch=500)
    torch.manual_seed(0)
    cfg = MotionConfig(w_dim=16, noise_dim=16, h_dim=8, n_pca=8, w_residual=0.05, oscillators=2)
    M = MotionGenerator(cfg, basis.components, basis.stdev)
    with torch.no_grad():
        M.osc_log_period.copy_(torch.tensor([7.0, 13.0]).log())
        M.osc_move.zero_()
        M.osc_move[0, 0], M.osc_move[1, 1] = 1.0, 1.0
    n = 64
    fitted, note = P.fit_periods(M, n)
    assert torch.allclose(fitted.osc_log_period.exp(), torch.tensor([64 / 9, 64 / 5]))
    assert (
        "7->7.11" in note
        and "13->12.8" in note
        and torch.equal(M.osc_log_period.exp().round(), torch.tensor([7.0, 13]))
    )
    w1 = draw_w1(G, 16, R._generator(0, 0))
    loop, open_ws = _walk(fitted, w1, n, loop=True), _walk(M, w1, n, loop=False)
    close, other = _seam(loop)
    assert bool((close <= other.max(dim=1).values).all())
    a, b = motion_stats(loop, M.pca_components[:2]), motion_stats(open_ws, M.pca_components[:2])
    assert float((a.periods / b.periods - 1).abs().max()) < 0.1
    assert abs(a.step / b.step - 1) < 0.1


def test_loop_frames_with_in_betweens(pair):
    G, M = load_image_generator(pair[0]), load_motion(pair[1])
    w1 = draw_w1(G, 2, R._generator(0, 0))
    key, mid = _walk(M, w1, 7, loop=True, chunk=3), _walk(M, w1, 7, loop=True, interpolate=3, chunk=2)
    assert mid.shape[1] == 21 and P.frame_count(7, 3, loop=True) == 21
    assert torch.equal(mid[:, ::3], key)  # the loop's frames, exactly, whatever the chunks
    ring = torch.cat([key, key[:, :1]], dim=1)
    torch.testing.assert_close(mid[:, 1::3], ring[:, :-1] + (ring[:, 1:] - ring[:, :-1]) / 3)
    torch.testing.assert_close(mid[:, -1], key[:, -1] + (w1 - key[:, -1]) * 2 / 3)  # on the way back to frame 0


def test_same_seed_same_frames(tmp_path, pair, capsys):
    g, m = pair
    G, M = load_image_generator(g), load_motion(m)

    def frames(seed, **kw):
        return torch.stack(list(R.render_frames(M, G, seed=seed, videos=2, **kw)))

    a, b, c = frames(3, frames=6, loop=True), frames(3, frames=6, loop=True), frames(4, frames=6, loop=True)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (6, 2, 16, 16, 3)
    track = P.KeyframePath(keys=[1, 2], seconds=0.5, motion_weight=1).track(G, [1, 2], fps=8, loop=True)
    a, b = frames(3, frames=8, loop=True, track=track), frames(3, frames=8, loop=True, track=track)
    assert torch.equal(a, b) and not torch.equal(a, frames(4, frames=8, loop=True, track=track))
    with pytest.raises(UsageError, match="frames must be the keyframe track's frames, 8, got 9"):
        R.render_frames(M, G, 9, loop=True, track=track)
    # the command line makes the same frames as the library
    code, _, err = run_render(
        capsys, tmp_path / "v", pair, "--keyframes", "1,2", "--seconds", "0.5", "--fps", "8", "--loop"
    )
    assert code == 0, err
    assert len(list((tmp_path / "v").glob("*.png"))) == 8


def test_a_photo_keyframe_is_inverted_first(tmp_path, pair):
    g, m = pair
    G = load_image_generator(g)
    save_latent(_latent(G, seed=1), "one")
    with torch.no_grad():
        photo = R.to_uint8(G.synthesis(_latent(G, seed=2).ws))[0].numpy()
    iio.imwrite(tmp_path / "me.png", photo)
    notes = []
    cfg = R.RenderConfig(
        motion=m,
        image=g,
        keyframes=P.KeyframePath(keys=["one", str(tmp_path / "me.png")], seconds=0.25),
        fps=8,
        device="cpu",
        invert_options=dict(steps=5, loss="pixel", w_avg_samples=500),
    )
    r = R.render(tmp_path / "v", cfg, on_note=notes.append)
    assert r.frames == 3 and any("inverting me.png" in n for n in notes)
    # without VGG16 the perceptual loss cannot be: one line, before any work, naming `mocohd invert`
    cfg.invert_options = None
    with pytest.raises(MocohdError, match=r"mocohd invert .*me\.png --image .* --loss pixel"):
        R.render(tmp_path / "w.mp4", cfg)
    assert not (tmp_path / "w.mp4").exists()


# ----------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written


def run_render(capsys, out, pair, *args):
    g, m = pair
    return run(capsys, "render", str(out), "--motion", str(m), "--image", str(g), "--device", "cpu", *args)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--keyframes", "3"], "a keyframe path needs at least 2 keyframes, got 1"),
        (["--keyframes", "3,nobody"], "keyframe 'nobody' is not a seed (a whole number), a latent"),
        (["--keyframes", "3,,4"], "an empty keyframe in '3,,4'"),
        (["--keyframes", "1,2", "--path", "zigzag"], "path must be one of linear, slerp, spline, got 'zigzag'"),
        (["--keyframes", "1,2", "--easing", "bounce"], "easing must be one of linear, ease-in-out, cubic"),
        (["--keyframes", "1,2", "--in", "x"], "space must be one of z, w, got 'x'"),
        (["--keyframes", "1,2", "--seconds", "0"], "seconds (per segment) must be > 0"),
        (["--keyframes", "1,2", "--seconds", "0.01"], "0.01 seconds at 12 fps is no frame per segment"),
        (["--keyframes", "1,2", "--motion-weight", "-1"], "motion_weight must be >= 0"),
        (["--keyframes", "1,2", "-n", "30"], "-n/--frames does not apply with --keyframes"),
        (["--keyframes", "1,2", "--interpolate", "2"], "interpolate does not apply to a keyframe path"),
        (["--keyframes", "1,2", "--start", "x"], "keyframes and start contradict each other"),
        (["--path", "slerp", "--seconds", "3"], "--path, --seconds shape a keyframe path: give --keyframes too"),
        (["--easing", "cubic"], "--easing shapes a keyframe path: give --keyframes too"),
        (["--loop", "-n", "2"], "a loop needs at least 3 frames, got 2"),
        (["--loop", "--rotate", "10"], "a camera track (rotate, translate, shake) does not loop"),
        (["--loop", "--class-to", "7"], "a loop cannot morph the class to class_to"),
        (["--keyframes", "1,photo", "--in", "z"], "a path in z runs through seeds only; keyframe 'photo'"),
        (["--keyframes", str(2**40) + ",1"], "a keyframe seed must be in 0..1099511627775"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, pair, capsys, args, message):
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = run_render(capsys, out / "v.mp4", pair, *args)
    lines = [s for s in err.strip().splitlines() if not s.startswith("rendering: ")]
    assert code == 2 and len(lines) == 1 and message in err, err
    assert list(out.iterdir()) == [] and "wrote" not in stdout


def test_an_unreadable_photo_keyframe_is_exit_2(tmp_path, pair, capsys):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_render(capsys, out / "v.mp4", pair, "--keyframes", f"1,{tmp_path / 'broken.png'}")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "broken.png' is not a seed" in err, err
    assert list(out.iterdir()) == []
    with pytest.raises(UsageError, match="at least 2 keyframes"):
        P.KeyframePath(keys=[5])
    with pytest.raises(UsageError, match="a keyframe is a seed, a latent or a photo, got True"):
        P.KeyframePath(keys=[True, 1])


def test_the_library_checks_what_it_is_given(pair):
    G, M = load_image_generator(pair[0]), load_motion(pair[1])
    path = P.KeyframePath(keys=[1, 2])
    assert R.RenderConfig(keyframes="1,2").keyframes.keys == [1, 2]
    with pytest.raises(UsageError, match="track must be a KeyframeTrack"):
        R.render_frames(M, G, 3, track=path)
    with pytest.raises(UsageError, match="RenderConfig takes a KeyframePath"):
        R.RenderConfig(keyframes=path.track(G, [1, 2], fps=4))
    with pytest.raises(UsageError, match="the keyframe track is closed but the render is not a loop"):
        R.render_frames(M, G, 16, track=path.track(G, [1, 2], fps=4, loop=True))
    with pytest.raises(UsageError, match="a loop needs at least 3 frames, got 2"):
        R.render_frames(M, G, 2, loop=True)


def test_a_photo_that_needs_vgg16_is_refused_before_any_work(monkeypatch, tmp_path):
    """A photo start or keyframe inverted with the perceptual loss needs VGG16: one line that says how
    to go on (the pixel loss names the same command for both); the pixel loss needs nothing."""
    monkeypatch.setattr(P, "have_vgg16", lambda: False)
    photo = tmp_path / "me.png"
    with pytest.raises(MocohdError, match=r"^keyframe .*me.png: a photo .* give its latent, me, as the keyframe$"):
        P.check_keyframe_photos([3, photo], None, "demo")
    with pytest.raises(MocohdError, match=r"^--start .*me.png: .*`mocohd render --start me \.\.\.`$"):
        P.check_photos_invertible([photo], {}, "demo", "--start", "`mocohd render --start {name} ...`")
    P.check_photos_invertible([photo], {"loss": "pixel"}, "demo", "--start", "")
