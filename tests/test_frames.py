"""The frame recipe (mocohd_cli/frames.py): synthesize, the per-video draws and check_pair;
the demo's frames bit for bit; training's fake clips are rendering's frames."""

import hashlib
import inspect
import json

import pytest
import torch
import torch.nn.functional as F

from mocohd_cli import frames as fr
from mocohd_cli import load_image_generator, load_motion
from mocohd_cli import render as R
from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.motion import MotionConfig, MotionGenerator
from mocohd_cli.train import steps
from mocohd_cli.train.steps import GANConfig, MotionGAN

from .biggan_reference import TINY, make_reference
from .conftest import randomized_generator, tiny_config


@pytest.fixture
def biggan(tmp_path):
    """A tiny BigGAN-deep with a 128-d w, so that the 128-d demo motion model drives it."""
    cfg = dict(TINY, z_dim=128, class_embed_dim=128)
    torch.save(make_reference(cfg, seed=3).state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return load_image_generator(tmp_path / "pytorch_model.bin")


def motion(w_dim):
    torch.manual_seed(0)
    return MotionGenerator(MotionConfig(w_dim=w_dim, noise_dim=w_dim, h_dim=8, n_pca=4))


def digest(stream) -> str:
    h = hashlib.sha256()
    for frame in stream:
        assert frame.dtype == torch.uint8
        h.update(frame.contiguous().numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------
# The demo renders the same frames, bit for bit. The digests were taken from the code before
# the frame recipe moved into frames.py (commit 0dd39bb, torch 2.13.0, CPU, fp32); a change
# to how frames are made changes them. Re-record only for an intended change of the frames.

DEMO_DIGESTS = [
    ({}, "79ae23befe87404f7a732550789ecdf77ad9c7081d0afd507aef3ff214e0b859"),
    ({"noise": "random"}, "f80ca7010d017790d1a8d5b7e959b8f9d8a5316a5873e7157c64397ed93fe417"),
    ({"truncation": 0.7}, "ca98280a9c3cc4d293151debd39ff2a059531b238dabec5c586c4aa95e935270"),
    ({"noise": "off"}, "f70c71b671757d8dd3a1a01a34c9c8c369ffc52abf2af147de07688c3bdd78b3"),
    ({"interpolate": 3, "batch": 5}, "0457fb48f3e9475db072cf9d5af12418d95180e200148edfb708537f46c96897"),
]
BIGGAN_DIGESTS = [  # 6 frames of 2 videos, truncation 0.5
    ({"classes": [207, 3]}, "d96c97e631049006a142103e1dc8a2319797eaeab625df87d610de2291eb8280"),
    ({"classes": [207], "class_to": 0, "batch": 5}, "319dac9cff6c52732892b3d5e2006a2e8fef7e9ad4f4fc69882c006fd793a240"),
    ({}, "d4572c22b236ce47bc33fac12cd1e58a73b3612c3d203b9197eee351cb24cecc"),
]


@pytest.mark.parametrize("kw,expected", DEMO_DIGESTS)
def test_the_demo_renders_the_same_frames_bit_for_bit(kw, expected):
    M, G = load_motion("demo"), load_image_generator("demo")
    assert digest(R.render_frames(M, G, frames=8, videos=2, seed=0, **kw)) == expected


@pytest.mark.parametrize("kw,expected", BIGGAN_DIGESTS)
def test_class_conditional_frames_bit_for_bit(biggan, kw, expected):
    stream = R.render_frames(load_motion("demo"), biggan, frames=6, videos=2, seed=0, truncation=0.5, **kw)
    assert digest(stream) == expected


# ----------------------------------------------------------------------------
# Training sees the frames rendering makes: the same draws give the same inputs to the one
# recipe, bit for bit, and the same images (up to the last bits of float sums, which depend on
# how many frames a convolution computes at once: rendering batches frames time-major, training
# a whole batch of clips).


def spy(monkeypatch, module) -> list[dict]:
    calls = []
    signature = inspect.signature(fr.synthesize)

    def recording(*args, **kwargs):
        out = fr.synthesize(*args, **kwargs)
        calls.append({**signature.bind(*args, **kwargs).arguments, "out": out.detach()})
        return out

    monkeypatch.setattr(module, "synthesize", recording)
    return calls


def time_major(x, videos, frames):  # [V * T, ...] (clips) -> [T * V, ...] (rendering's order)
    return x.reshape(videos, frames, *x.shape[1:]).transpose(0, 1).reshape(videos * frames, *x.shape[1:])


@pytest.mark.parametrize("conditional,truncation", [(False, 1.0), (False, 0.7), (True, 0.5)])
def test_training_clips_are_the_rendered_frames(monkeypatch, biggan, conditional, truncation):
    M = load_motion("demo")
    G = biggan if conditional else load_image_generator("demo")
    V, T, seed, labels = 2, 5, 3, [207, 3]
    rendered_calls, training_calls = spy(monkeypatch, R), spy(monkeypatch, steps)
    kw = {"classes": labels} if conditional else {}
    rendered = torch.stack(list(R.render_frames(M, G, frames=T, videos=V, seed=seed, truncation=truncation, **kw)))

    # the draws rendering made (its seed streams), handed to training's clip function
    gan = MotionGAN(G, M, GANConfig(frames=T, frame_size=G.resolution, world_batch=V, dv_channels=4, di_channels=4,
                                    proj_dim=8, queue=4, truncation=truncation))
    w1 = fr.draw_w1(G, V, R._generator(seed, 0))
    eps = M.draw_eps(V, T - 1, R._generator(seed, 1))
    noise = fr.VideoNoise(G, V, "fixed", R._generator(seed, 2))
    clips, _, _ = gan.clips(w1, eps, noise, torch.tensor(labels) if conditional else None)
    assert clips.shape == (V, T, 3, G.resolution, G.resolution)

    assert len(training_calls) == 1 and len(rendered_calls) >= 2
    (train,) = training_calls
    assert train["truncation"] == truncation and all(c["truncation"] == truncation for c in rendered_calls)
    assert torch.equal(time_major(train["ws"], V, T), torch.cat([c["ws"] for c in rendered_calls]))
    for layer, maps in enumerate(train["noise"] or []):
        assert torch.equal(time_major(maps, V, T), torch.cat([c["noise"][layer] for c in rendered_calls]))
    if conditional:
        vectors = F.one_hot(time_major(train["classes"], V, T), G.c_dim).float()
        assert torch.equal(vectors, torch.cat([c["classes"] for c in rendered_calls]))
    else:
        assert train["classes"] is None and all(c["classes"] is None for c in rendered_calls)

    images = torch.cat([c["out"] for c in rendered_calls])
    assert (time_major(clips.detach().flatten(0, 1), V, T) - images).abs().max() < 1e-5
    frames = R.to_uint8(clips.detach().flatten(0, 1)).reshape(V, T, *rendered.shape[2:]).transpose(0, 1)
    assert (frames.int() - rendered.int()).abs().max() <= 1


def test_fake_clips_are_the_runs_draws_through_clips():
    """fake_clips = the run's draws (w_1, eps, per-video noise) made with frames' helpers, then clips."""
    G, M = load_image_generator("demo"), load_motion("demo")
    gan = MotionGAN(G, M, GANConfig(frames=3, frame_size=32, world_batch=2, dv_channels=4, di_channels=4, proj_dim=8,
                                    queue=4), seed=1)
    state = gan.rng.get_state()
    clips, eps, _ = gan.fake_clips(2)
    assert clips.shape == (2, 3, 3, 32, 32)
    rng = torch.Generator()
    rng.set_state(state)
    w1, eps2 = fr.draw_w1(G, 2, rng), M.draw_eps(2, 2, rng)
    again, _, _ = gan.clips(w1, eps2, fr.VideoNoise(G, 2, "fixed", rng))
    assert torch.equal(eps, eps2) and torch.equal(clips, again)


# ----------------------------------------------------------------------------
# synthesize


def test_synthesize_is_the_truncated_synthesis_with_the_given_noise(tiny_generator):
    G = tiny_generator
    w = G.mapping(torch.randn(3, G.z_dim)).detach().requires_grad_(True)
    noise = G.synthesis.make_noise(3, generator=torch.Generator().manual_seed(1))
    out = fr.synthesize(G, w, noise, truncation=0.5)
    with torch.no_grad():
        expected = G.synthesis(G.mapping.w_avg + 0.5 * (w - G.mapping.w_avg), noise=noise)
        plain = G.synthesis(w, noise=noise)
        silent = G.synthesis(w, noise_mode="none")
    assert out.dtype == torch.float32 and out.shape == (3, 3, 16, 16)
    assert torch.allclose(out, expected, atol=1e-5) and not torch.allclose(out, plain, atol=1e-3)
    out.sum().backward()  # differentiable w.r.t. ws: training back-propagates into the motion model
    assert w.grad is not None and w.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.equal(fr.synthesize(G, w, None), silent)  # no noise maps: no noise
        assert torch.equal(fr.synthesize(G, w, noise, truncation=1.0), plain)


def test_synthesize_classes_numbers_or_vectors(biggan):
    G = biggan
    w = G.mapping(torch.randn(2, G.w_dim))
    with torch.no_grad():
        by_number = fr.synthesize(G, w, classes=[207, 3], truncation=0.5)
        by_tensor = fr.synthesize(G, w, classes=torch.tensor([207, 3]), truncation=0.5)
        vectors = F.one_hot(torch.tensor([207, 3]), 1000).float()
        by_vector = fr.synthesize(G, w, classes=vectors, truncation=0.5)
        expected = G.synthesis(0.5 * w, vectors, truncation=0.5)
    assert torch.equal(by_number, by_vector) and torch.equal(by_tensor, by_vector)
    assert torch.equal(by_vector, expected)  # BigGAN: w scaled toward 0 and the statistics of psi 0.5
    with pytest.raises(MocohdError, match="class-conditional: give a class"):
        fr.synthesize(G, w)


def test_synthesize_refuses_what_cannot_work(tiny_generator):
    G = tiny_generator
    with pytest.raises(UsageError, match=r"^ws are 16-d but the stylegan2 image generator has a 32-d w$"):
        fr.synthesize(G, torch.randn(2, 16))
    with pytest.raises(UsageError, match="unconditional"):
        fr.synthesize(G, torch.randn(2, 32), classes=[1, 2])


# ----------------------------------------------------------------------------
# The per-video draws


def test_video_noise_modes(tiny_generator):
    G = tiny_generator
    fixed = fr.VideoNoise(G, 2, "fixed", torch.Generator().manual_seed(0))
    maps = fixed(torch.tensor([0, 1, 0, 1]))
    assert len(maps) == len(G.synthesis.layers()) and maps[0].shape[0] == 4
    assert all(torch.equal(m[0], m[2]) and torch.equal(m[1], m[3]) and not torch.equal(m[0], m[1]) for m in maps)
    # random: a new draw for every frame, drawn frame by frame (the same maps however frames are batched)
    a = fr.VideoNoise(G, 2, "random", torch.Generator().manual_seed(0))
    b = fr.VideoNoise(G, 2, "random", torch.Generator().manual_seed(0))
    together = a(torch.tensor([0, 1, 0]))
    apart = [torch.cat(layer) for layer in zip(b(torch.tensor([0])), b(torch.tensor([1, 0])))]
    assert all(torch.equal(x, y) and not torch.equal(x[0], x[2]) for x, y in zip(together, apart))
    assert fr.VideoNoise(G, 2, "off")(torch.tensor([0, 1])) is None
    with pytest.raises(UsageError, match=r"^noise must be one of fixed, random, off, got 'const'$"):
        fr.VideoNoise(G, 2, "const")


def test_draw_w1_classes_and_class_vectors(biggan):
    G = biggan
    w1 = fr.draw_w1(G, 3, torch.Generator().manual_seed(0))
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0))
    assert torch.equal(w1, G.mapping(z)) and not w1.requires_grad
    drawn = fr.draw_classes(G, 50, torch.Generator().manual_seed(0), pool=(207, 3))
    assert drawn.dtype == torch.long and set(drawn.tolist()) == {207, 3}
    assert 0 <= int(fr.draw_classes(G, 1, torch.Generator()).item()) < 1000
    # class interpolation: video v's vector moves from its class to 'to' over 5 frames (time-major rows)
    cs = fr.class_vectors(G, [207, 3], torch.arange(5), 5, to=0)
    assert cs.shape == (10, 1000)
    assert torch.equal(cs[:2], F.one_hot(torch.tensor([207, 3]), 1000).float())
    assert torch.equal(cs[-2:], F.one_hot(torch.tensor([0, 0]), 1000).float())
    assert cs[4, 207] == 0.5 and cs[4, 0] == 0.5 and cs[5, 3] == 0.5
    still = fr.class_vectors(G, [207, 3], torch.arange(2, 4), 5)
    assert torch.equal(still, F.one_hot(torch.tensor([207, 3, 207, 3]), 1000).float())


# ----------------------------------------------------------------------------
# check_pair


def test_check_pair_w_sizes():
    G = load_image_generator("demo")
    assert fr.check_pair(load_motion("demo"), G) == []
    with pytest.raises(MocohdError, match=r"^the motion model moves in a 16-d latent space but the stylegan2 image "
                                          r"generator 'demo' has a 128-d w: they cannot be combined$"):
        fr.check_pair(motion(16), G)
    with pytest.raises(MocohdError, match="the stylegan2 image generator has a 32-d w"):  # no name: the family
        fr.check_pair(motion(16), randomized_generator(tiny_config()))


def test_check_pair_classes(biggan, tiny_generator):
    assert fr.check_pair(None, biggan, ["golden_retriever", "3,0"]) == [207, 3, 0]
    assert fr.check_pair(motion(128), biggan, 5) == [5] and fr.check_pair(None, biggan) == []
    with pytest.raises(MocohdError, match="class 1000 is out of range"):
        fr.check_pair(None, biggan, [1000])
    with pytest.raises(MocohdError, match=r"^classes are for class-conditional image generators \(BigGAN\); "
                                          r"the stylegan2 image generator is unconditional$"):
        fr.check_pair(None, tiny_generator, [207])
    assert fr.check_pair(None, tiny_generator, []) == []


@pytest.mark.parametrize("truncation,conditional_ok,unconditional_ok", [
    (1.0, True, True), (0.5, True, True), (1.5, False, True), (0.0, False, True), (-0.1, False, False),
    (float("nan"), False, False), (float("inf"), False, False), ("high", False, False), (True, False, False),
])
def test_check_pair_truncation(biggan, tiny_generator, truncation, conditional_ok, unconditional_ok):
    for G, ok in ((biggan, conditional_ok), (tiny_generator, unconditional_ok)):
        if ok:
            assert fr.check_pair(None, G, truncation=truncation) == []
        else:
            with pytest.raises(UsageError, match=r"^truncation must be "):
                fr.check_pair(None, G, truncation=truncation)
    if unconditional_ok and not conditional_ok:
        with pytest.raises(UsageError, match=r"truncation must be in \(0, 1\] for biggan-deep \(its stored batch-norm"):
            fr.check_pair(None, biggan, truncation=truncation)


def test_render_uses_the_pair_check(tmp_path, biggan):
    """render_frames and render word failures as check_pair does (no CLI flag names)."""
    with pytest.raises(MocohdError, match="^the motion model moves in a 16-d latent space"):
        R.render_frames(motion(16), load_image_generator("demo"), frames=2)
    with pytest.raises(MocohdError, match="unconditional"):
        R.render_frames(load_motion("demo"), load_image_generator("demo"), frames=2, class_to=3)
    with pytest.raises(UsageError, match=r"^truncation must be in \(0, 1\] for biggan-deep"):
        R.render(tmp_path / "x.mp4", image=tmp_path / "pytorch_model.bin", truncation=1.5)  # the biggan fixture's file
    assert not (tmp_path / "x.mp4").exists()
