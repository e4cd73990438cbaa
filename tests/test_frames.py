"""The frame recipe (mocohd_cli/frames.py): synthesize, the per-video draws and check_pair;
the recipe's frames do not drift (within a level or two of uint8 on any CPU, bit for bit on
the machine that took the digests); training's fake clips are rendering's frames."""

import hashlib
import inspect
import json
import platform
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mocohd_cli import frames as fr, load_image_generator, load_motion, render as R
from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.motion import MotionConfig, MotionGenerator
from mocohd_cli.train import motion_gan
from mocohd_cli.train.motion_gan import GANConfig, MotionGAN

from .conftest import randomized_generator, tiny_config
from .support.biggan_reference import TINY, make_reference


def tiny_biggan(folder: Path):
    """A tiny BigGAN-deep with a 128-d w, so that the 128-d demo motion model drives it, saved in
    ``folder`` as pytorch_model.bin (with its config.json) and loaded from there."""
    cfg = dict(TINY, z_dim=128, class_embed_dim=128)
    torch.save(make_reference(cfg, seed=3).state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(cfg))
    return load_image_generator(folder / "pytorch_model.bin")


@pytest.fixture
def biggan(tmp_path):
    """``tiny_biggan`` in tmp_path."""
    return tiny_biggan(tmp_path)


def motion(w_dim):
    torch.manual_seed(0)
    return MotionGenerator(MotionConfig(w_dim=w_dim, noise_dim=w_dim, h_dim=8, n_pca=4))


# ----------------------------------------------------------------------------
# The recipe's frames do not drift. Eight cases: the demo (its motion model and generator: 8
# frames of 2 videos, seed 0) and a tiny BigGAN driven by the demo motion (6 frames of 2 videos,
# truncation 0.5). Two checks of the same frames:
#
# - on any CPU, against tests/data/frame_references.npz: of each case, video 0's last frame and
#   video 1's second frame, average-pooled to 32 px and rounded to uint8 (``reduced``), within
#   MAX_LEVELS levels of uint8 anywhere and MEAN_LEVELS on average. Float kernels differ by CPU
#   (AVX2 or AVX-512, oneDNN's and MKL's paths round differently), so the same code may put a
#   few pixels one level off on another machine; a change of the recipe moves many pixels more.
# - bit for bit, sha256 digests of every frame in tests/data/frame_digests.json, only on the
#   kind of machine that took them (``this_machine``: CPU model and vector extensions, ATen's CPU
#   capability, torch version, recorded beside the digests); elsewhere skipped, saying why.
#
# Both files are written by tests/data/make_frame_references.py (it prints which digests
# changed; --check writes nothing). Re-record only for an intended change of the frames. The
# digests of the five demo cases and of the first two BigGAN cases are those taken from the code
# before the frame recipe moved into frames.py (commit 0dd39bb, torch 2.13.0, CPU, fp32, on an
# AMD EPYC); the third BigGAN case's (classes drawn from the seed) was taken again with the
# machine recorded: on that AMD EPYC (AVX2) even the commit that pinned it gives
# other bytes, so the first one was another kind of machine. Measured with other kernels on
# one machine (ATEN_CPU_CAPABILITY=default, ONEDNN_MAX_CPU_ISA=SSE41): 6 of the 8 digests
# change, 0.002-0.005% of the pixels move one level, the references stay within 1 level (mean
# 0.0002); a truncation of 0.99 instead of 1 moves them by up to 6 levels (mean 0.6).

DATA = Path(__file__).parent / "data"
REFERENCES = DATA / "frame_references.npz"
DIGESTS = DATA / "frame_digests.json"
REFERENCE_SIZE = 32  # px: the references' frames are average-pooled to this size
MAX_LEVELS, MEAN_LEVELS = 2, 0.1  # the tolerance of the references, in levels of uint8

DEMO_CASES = {  # name: render_frames' keyword arguments
    "demo": {},
    "demo-noise-random": {"noise": "random"},
    "demo-truncation-0.7": {"truncation": 0.7},
    "demo-noise-off": {"noise": "off"},
    "demo-interpolate-3-batch-5": {"interpolate": 3, "batch": 5},
}
BIGGAN_CASES = {
    "biggan-classes-207-3": {"classes": [207, 3]},
    "biggan-207-to-0-batch-5": {"classes": [207], "class_to": 0, "batch": 5},
    "biggan-classes-drawn": {},
}
# the vector extensions that decide which float kernels run (oneDNN, MKL, ATen)
VECTOR_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512dq",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_fp16",
    "amx_int8",
)


def case_frames(name: str, biggan=None) -> torch.Tensor:
    """The frames of case ``name``, [T, videos, H, W, 3] uint8 (``biggan``: ``tiny_biggan``'s model)."""
    M = load_motion("demo")
    if name in DEMO_CASES:
        stream = R.render_frames(M, load_image_generator("demo"), frames=8, videos=2, seed=0, **DEMO_CASES[name])
    else:
        stream = R.render_frames(M, biggan, frames=6, videos=2, seed=0, truncation=0.5, **BIGGAN_CASES[name])
    return torch.stack(list(stream))


def digest(frames: torch.Tensor) -> str:
    """sha256 of the frames' bytes, in time order (frame t of every video, then t + 1)."""
    assert frames.dtype == torch.uint8
    return hashlib.sha256(frames.contiguous().numpy().tobytes()).hexdigest()


def reduced(frames: torch.Tensor) -> np.ndarray:
    """What the references keep of a case's frames [T, V, H, W, 3]: video 0's last frame and video
    1's second, average-pooled to REFERENCE_SIZE px and rounded, [2, S, S, 3] uint8. The mean of 2 x 2
    whole numbers is exact in float32: the same frames give the same bytes on any machine."""
    picked = torch.stack([frames[-1, 0], frames[1, 1]]).permute(0, 3, 1, 2).float()
    pooled = F.avg_pool2d(picked, picked.shape[-1] // REFERENCE_SIZE)
    return pooled.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def this_machine() -> dict:
    """What bit-for-bit frames depend on: the CPU's model and vector extensions (/proc/cpuinfo where
    there is one), the vector kernels ATen picked for it, and the torch version."""
    model, flags, kind = "", set(), {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "Hardware") and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
            elif (
                key in ("vendor_id", "cpu family", "model", "stepping", "CPU implementer", "CPU part")
                and key not in kind
            ):
                kind[key] = value.strip()
    except OSError:
        pass
    # A virtual machine may name every generation alike ("AMD EPYC"): the family, model and stepping
    # numbers tell Zen 2 from Zen 3 and Zen 4, whose kernels round some sums differently.
    generation = " ".join(f"{k} {v}" for k, v in kind.items())
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "generation": generation,
        "vector": [f for f in VECTOR_FLAGS if f in flags],
        "aten": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }


def recorded() -> dict:
    """tests/data/frame_digests.json: {"machine": this_machine() where they were taken, "digests": {case: sha256}}."""
    return json.loads(DIGESTS.read_text())


def skip_unless_bitwise_here() -> None:
    """Skip (saying why) unless this is the kind of machine the digests were taken on."""
    mine, theirs = this_machine(), recorded()["machine"]
    if mine != theirs:
        differ = ", ".join(
            f"{k} {mine.get(k)!r} (taken with {theirs.get(k)!r})" for k in theirs if mine.get(k) != theirs.get(k)
        )
        pytest.skip(
            f"exact frame digests hold only on the machine kind that took them ({theirs['cpu']}, "
            f"{theirs['aten']}, torch {theirs['torch']}); here {differ}: float kernels differ by CPU, "
            "the frames are checked against the references within a level or two of uint8 instead"
        )


def _generator_of(name: str, request):
    return request.getfixturevalue("biggan") if name in BIGGAN_CASES else None


@pytest.mark.parametrize("name", [*DEMO_CASES, *BIGGAN_CASES])
def test_the_frames_stay_within_two_levels_of_the_references(name, request):
    """On any CPU: the case's ``reduced`` frames within MAX_LEVELS (2) levels of uint8 of
    tests/data/frame_references.npz, MEAN_LEVELS (0.1) on average. The file is written by
    `python tests/data/make_frame_references.py` (--check: how far this machine is, writing nothing)."""
    frames = case_frames(name, _generator_of(name, request))
    with np.load(REFERENCES) as references:
        want = references[name]
    got = reduced(frames)
    assert got.shape == want.shape == (2, REFERENCE_SIZE, REFERENCE_SIZE, 3)
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS, (name, int(diff.max()), float(diff.mean()))


def test_the_references_are_small_and_tell_the_cases_apart():
    """The file stays compact, and the tolerance is far below what a change of the recipe does: a
    truncation of 0.7, no noise or a fresh noise draw per frame move the demo's frames many levels."""
    assert REFERENCES.stat().st_size < 64 * 1024 and DIGESTS.stat().st_size < 4096
    with np.load(REFERENCES) as references:
        assert sorted(references.files) == sorted([*DEMO_CASES, *BIGGAN_CASES])
        base = references["demo"].astype(np.int16)
        for other in ("demo-noise-random", "demo-truncation-0.7", "demo-noise-off"):
            diff = np.abs(references[other].astype(np.int16) - base)
            assert diff.max() > 10 * MAX_LEVELS and diff.mean() > 10 * MEAN_LEVELS, other
    assert sorted(recorded()["digests"]) == sorted([*DEMO_CASES, *BIGGAN_CASES])


@pytest.mark.parametrize("name", DEMO_CASES)
def test_the_demo_renders_the_same_frames_bit_for_bit(name):
    skip_unless_bitwise_here()
    assert digest(case_frames(name)) == recorded()["digests"][name]


@pytest.mark.parametrize("name", BIGGAN_CASES)
def test_class_conditional_frames_bit_for_bit(name, request):
    skip_unless_bitwise_here()  # before the fixture: nothing is built on another machine
    assert digest(case_frames(name, _generator_of(name, request))) == recorded()["digests"][name]


def test_exact_digests_are_skipped_not_failed_on_another_machine(monkeypatch):
    """Regression: on an Intel Xeon the digests (taken on an AMD EPYC) failed; there they are skipped,
    before any rendering, with the reason; the references' check runs everywhere."""
    theirs = recorded()["machine"]
    assert set(theirs) == set(this_machine()) and theirs["vector"]  # recorded as this_machine() describes one
    elsewhere = {
        **theirs,
        "cpu": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
        "vector": [*theirs["vector"], "avx512f"],
    }
    monkeypatch.setattr(sys.modules[__name__], "this_machine", lambda: elsewhere)
    monkeypatch.setattr(R, "render_frames", lambda *a, **k: pytest.fail("rendered on another machine"))
    for test in (
        test_the_demo_renders_the_same_frames_bit_for_bit,
        lambda name: test_class_conditional_frames_bit_for_bit(name, request=None),
    ):
        with pytest.raises(
            pytest.skip.Exception,
            match=r"^exact frame digests hold only on the machine kind that took "
            r"them \(.*\); here cpu 'Intel\(R\) Xeon.*vector \[.*'avx512f'\]",
        ):
            test("demo" if test is test_the_demo_renders_the_same_frames_bit_for_bit else "biggan-classes-drawn")
    monkeypatch.setattr(sys.modules[__name__], "this_machine", lambda: {**theirs, "torch": "2.99.0"})
    with pytest.raises(pytest.skip.Exception, match=r"here torch '2.99.0' \(taken with"):
        test_the_demo_renders_the_same_frames_bit_for_bit("demo")


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
    rendered_calls, training_calls = spy(monkeypatch, R), spy(monkeypatch, motion_gan)
    kw = {"classes": labels} if conditional else {}
    rendered = torch.stack(list(R.render_frames(M, G, frames=T, videos=V, seed=seed, truncation=truncation, **kw)))

    # the draws rendering made (its seed streams), handed to training's clip function
    gan = MotionGAN(
        G,
        M,
        GANConfig(
            frames=T,
            frame_size=G.resolution,
            world_batch=V,
            dv_channels=4,
            di_channels=4,
            proj_dim=8,
            queue=4,
            truncation=truncation,
        ),
    )
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
    gan = MotionGAN(
        G,
        M,
        GANConfig(frames=3, frame_size=32, world_batch=2, dv_channels=4, di_channels=4, proj_dim=8, queue=4),
        seed=1,
    )
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


@pytest.mark.parametrize("working_set", [16 << 20, 1])  # 1: every block runs one frame at a time
def test_a_small_stylegan2_frame_is_its_blocks_own_image(working_set):
    """synthesize(size=r) stops StyleGAN2 at block r: exactly the image that block hands on in a
    full-size synthesis (caught by a hook), and the full size is the synthesis as it was, bit for bit."""
    G = randomized_generator(tiny_config(resolution=32))
    G.synthesis.working_set_bytes = working_set
    w = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(2))).detach()
    noise = G.synthesis.make_noise(3, generator=torch.Generator().manual_seed(1))
    seen = {r: [] for r in (4, 8, 16)}
    hooks = [
        getattr(G.synthesis, f"b{r}").register_forward_hook(lambda m, i, out, r=r: seen[r].append(out[1].clone()))
        for r in seen
    ]
    with torch.no_grad():
        full = G.synthesis(w, noise=noise)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for r, images in seen.items():
            small = fr.synthesize(G, w, noise, size=r)
            assert small.shape == (3, 3, r, r) and torch.equal(small, torch.cat(images))
        assert torch.equal(fr.synthesize(G, w, noise), full) and torch.equal(fr.synthesize(G, w, noise, size=32), full)
        assert torch.equal(G.synthesis(w, noise=noise, size=32), full)


def test_other_families_shrink_their_full_size_frames(biggan):
    G = biggan
    w = G.mapping(torch.randn(2, G.w_dim))
    with torch.no_grad():
        full = fr.synthesize(G, w, classes=[207, 3], truncation=0.5)
        half = fr.synthesize(G, w, classes=[207, 3], truncation=0.5, size=G.resolution // 2)
    assert half.shape == (2, 3, G.resolution // 2, G.resolution // 2)
    torch.testing.assert_close(half, F.avg_pool2d(full, 2))  # 'area': each pixel the mean of its 2x2


@pytest.mark.parametrize("size", [0, 2, 3, 12, 64, 2.5, True, "16", float("nan")])
def test_a_size_that_is_not_a_power_of_two_up_to_the_resolution_is_refused(tiny_generator, size):
    with pytest.raises(UsageError, match=r"^size must be a power of two in 4\.\.16 \(the stylegan2 image generator"):
        fr.synthesize(tiny_generator, torch.randn(1, 32), size=size)
    assert fr.check_size(None, tiny_generator) is None and fr.check_size(8.0, tiny_generator) == 8
    with pytest.raises(UsageError, match=r"^size must be a power of two in 4\.\.16, got"):
        tiny_generator.synthesis(torch.randn(1, 32), size=2)  # the network's own check


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
    apart = [torch.cat(layer) for layer in zip(b(torch.tensor([0])), b(torch.tensor([1, 0])), strict=True)]
    assert all(torch.equal(x, y) and not torch.equal(x[0], x[2]) for x, y in zip(together, apart, strict=True))
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
    with pytest.raises(
        MocohdError,
        match=r"^the motion model moves in a 16-d latent space but the stylegan2 image "
        r"generator 'demo' has a 128-d w: they cannot be combined$",
    ):
        fr.check_pair(motion(16), G)
    with pytest.raises(MocohdError, match="the stylegan2 image generator has a 32-d w"):  # no name: the family
        fr.check_pair(motion(16), randomized_generator(tiny_config()))


def test_check_pair_classes(biggan, tiny_generator):
    assert fr.check_pair(None, biggan, ["golden_retriever", "3,0"]) == [207, 3, 0]
    assert fr.check_pair(motion(128), biggan, 5) == [5] and fr.check_pair(None, biggan) == []
    with pytest.raises(MocohdError, match="class 1000 is out of range"):
        fr.check_pair(None, biggan, [1000])
    with pytest.raises(
        MocohdError,
        match=r"^classes are for class-conditional image generators \(BigGAN\); "
        r"the stylegan2 image generator is unconditional$",
    ):
        fr.check_pair(None, tiny_generator, [207])
    assert fr.check_pair(None, tiny_generator, []) == []


@pytest.mark.parametrize(
    "truncation,conditional_ok,unconditional_ok",
    [
        (1.0, True, True),
        (0.5, True, True),
        (1.5, False, True),
        (0.0, False, True),
        (-0.1, False, False),
        (float("nan"), False, False),
        (float("inf"), False, False),
        ("high", False, False),
        (True, False, False),
    ],
)
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
        biggan_file = tmp_path / "pytorch_model.bin"  # the biggan fixture's file
        R.render(tmp_path / "x.mp4", R.RenderConfig(image=biggan_file, truncation=1.5))
    assert not (tmp_path / "x.mp4").exists()
