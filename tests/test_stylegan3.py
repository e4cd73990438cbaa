"""StyleGAN3 (T and R): NVIDIA's images for the same weights, the config's state
shapes, the filtered leaky ReLU's fast path against its reference, safe import of
StyleGAN3 network pickles, and the generator in the video pipeline (PCA, motion,
render, training's clips).

tests/data/stylegan3_reference.safetensors was made by
tests/data/make_stylegan3_reference.py with NVlabs/stylegan3 (CPU, float32).
"""

import copy
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from mocohd_cli import import_model, load_image_generator, ops, render as R
from mocohd_cli.data.procedural import write_dataset
from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.formats import canonical, read_any
from mocohd_cli.frames import VideoNoise, synthesize
from mocohd_cli.generators import FAMILIES, build_generator
from mocohd_cli.generators.stylegan3 import StyleGAN3Config, StyleGAN3Generator, camera_matrix, design_lowpass_filter
from mocohd_cli.loaders.pca_bases import pca_for
from mocohd_cli.motion import MotionConfig, MotionGenerator
from mocohd_cli.pca import fit_pca
from mocohd_cli.train import TrainConfig, train
from mocohd_cli.train.motion_gan import GANConfig, MotionGAN

from .conftest import run
from .support import devices
from .support.nvidia_pickle import HostileReduce, write_stylegan3_pickle

DATA = Path(__file__).parent / "data" / "stylegan3_reference.safetensors"
with safe_open(str(DATA), "pt") as _f:
    CONFIGS = json.loads(_f.metadata()["configs"])
    PSIS = json.loads(_f.metadata()["psis"])


def _case(name):
    with safe_open(str(DATA), "pt") as f:
        t = {k.split("/", 1)[1]: f.get_tensor(k) for k in f.keys() if k.startswith(name + "/")}
    cfg = StyleGAN3Config.from_dict(CONFIGS[name])
    G = StyleGAN3Generator(cfg).eval()
    G.load_state_dict({k.split("/", 1)[1]: v for k, v in t.items() if k.startswith("state/")}, strict=True)
    return G, t


def _check_images(G, t, impl="fast"):
    worst = 0.0
    for psi in PSIS:
        with torch.no_grad():
            w = G.mapping(t["z"], truncation_psi=psi)
            img = G.synthesis(w, impl=impl)
        ref = t[f"img_{psi}"]
        assert (w - t[f"w_{psi}"]).abs().max() < 1e-5
        assert img.shape == ref.shape
        # Images of random generators may exceed [-1, 1]; scale the 1e-4 bound accordingly.
        diff = float((img - ref).abs().max())
        assert diff < 1e-4 * max(1.0, float(ref.abs().max())), (psi, diff)
        worst = max(worst, diff)
    return worst


# ----------------------------------------------------------------------------
# NVIDIA's images


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_nvidia(name, impl):
    G, t = _case(name)
    _check_images(G, t, impl)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_designed_filters_are_nvidias(name):
    """A fresh generator designs the low-pass filters NVIDIA's code designs for the config."""
    _, t = _case(name)
    fresh = StyleGAN3Generator(StyleGAN3Config.from_dict(CONFIGS[name])).state_dict()
    designed = {k.split("/", 1)[1]: v for k, v in t.items() if k.startswith("designed/")}
    assert designed and set(designed) == {k for k in fresh if k.endswith("_filter")}
    for k, v in designed.items():
        assert fresh[k].shape == v.shape and (fresh[k] - v).abs().max() < 1e-7, k


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_imported_pickle_matches_nvidia(tmp_path, name):
    """The same weights through the import path: a network pickle, imported, loaded, run."""
    G_src, t = _case(name)
    write_stylegan3_pickle(tmp_path / "network-snapshot.pkl", G_src)
    import_model(tmp_path / "network-snapshot.pkl", name)
    G = load_image_generator(name)
    assert G.family == "stylegan3" and G.cfg == G_src.cfg
    _check_images(G, t)


# ----------------------------------------------------------------------------
# Config and module


def test_layer_names_of_nvidias_published_configs():
    """NVIDIA's 1024 px T and R generators name their layers so (size, channels)."""
    t = [s["name"] for s in StyleGAN3Config.preset("t", 1024).layer_specs()]
    assert t == [
        "L0_36_512",
        "L1_36_512",
        "L2_52_512",
        "L3_52_512",
        "L4_84_512",
        "L5_148_512",
        "L6_148_512",
        "L7_276_323",
        "L8_276_203",
        "L9_532_128",
        "L10_1044_81",
        "L11_1044_51",
        "L12_1044_32",
        "L13_1024_32",
        "L14_1024_3",
    ]
    r = [s["name"] for s in StyleGAN3Config.preset("r", 1024).layer_specs()]
    assert r == [
        "L0_36_1024",
        "L1_36_1024",
        "L2_52_1024",
        "L3_52_1024",
        "L4_84_1024",
        "L5_148_1024",
        "L6_148_1024",
        "L7_276_645",
        "L8_276_406",
        "L9_532_256",
        "L10_1044_161",
        "L11_1044_102",
        "L12_1044_64",
        "L13_1024_64",
        "L14_1024_3",
    ]
    r256 = StyleGAN3Config.preset("r", 256).state_shapes()
    assert r256["synthesis.L2_36_1024.weight"] == (1024, 1024, 1, 1) and r256["synthesis.L2_36_1024.down_filter"] == (
        12,
        12,
    )
    assert StyleGAN3Config.preset("t", 256).state_shapes()["synthesis.L14_256_3.weight"] == (3, 128, 1, 1)


@pytest.mark.parametrize(
    "cfg",
    [
        StyleGAN3Config.preset("t", 16, z_dim=8, w_dim=8, channel_base=128, channel_max=8, num_layers=4, margin_size=2),
        StyleGAN3Config.preset(
            "r", 32, z_dim=8, w_dim=12, channel_base=256, channel_max=16, num_layers=5, num_critical=1
        ),
        StyleGAN3Config.preset(
            "t",
            64,
            z_dim=8,
            w_dim=8,
            channel_base=256,
            channel_max=8,
            num_layers=7,
            mapping_layers=3,
            img_channels=1,
            conv_clamp=None,
        ),
    ],
)
def test_state_shapes_equal_the_module(cfg):
    G = build_generator("stylegan3", cfg.to_dict())
    assert {k: tuple(v.shape) for k, v in G.state_dict().items()} == cfg.state_shapes()
    assert StyleGAN3Config.from_dict(cfg.to_dict()) == cfg
    assert G.num_ws == cfg.num_layers + 2 and G.c_dim == 0 and G.family == "stylegan3"
    with torch.no_grad():
        img = G.synthesis(G.mapping(torch.randn(2, cfg.z_dim)))
    assert img.shape == (2, cfg.img_channels, cfg.resolution, cfg.resolution)


@pytest.mark.parametrize(
    "bad",
    [
        dict(resolution=24),
        dict(num_critical=14),
        dict(conv_kernel=0),
        dict(use_radial_filters=1),
        dict(first_stopband=1.0),
        dict(first_cutoff=0.05, first_stopband=0.1),
        dict(first_cutoff=float("nan")),
        dict(conv_clamp=-1.0),
        dict(channel_base=1, channel_max=1),
        dict(surprise=1),
    ],
)
def test_bad_configs_are_usage_errors(bad):
    with pytest.raises(UsageError):
        StyleGAN3Config.from_dict({**StyleGAN3Config(resolution=64).to_dict(), **bad})
    assert "stylegan3" in FAMILIES


def test_radial_filter_is_a_unit_sum_jinc():
    f = design_lowpass_filter(12, 4.0, 3.0, 16.0, radial=True)
    assert f.shape == (12, 12) and abs(float(f.sum()) - 1) < 1e-6 and torch.allclose(f, f.t())
    assert design_lowpass_filter(1, 4.0, 3.0, 16.0) is None


@pytest.fixture(scope="module")
def tiny():
    G, _ = _case("t16")
    return G


def test_frames_do_not_depend_on_their_batch(tiny):
    """The same images alone or in a batch, up to float rounding: the kernels' sums depend on the batch
    and on the threads (1.07e-6 apart with 2 threads on an AMD EPYC, 0 with one), so 1e-5, far below
    anything a per-batch draw or mix-up would do."""
    w = tiny.mapping(torch.randn(4, tiny.z_dim, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        together = tiny.synthesis(w)
        alone = torch.cat([tiny.synthesis(w[i : i + 1]) for i in range(4)])
    assert (together - alone).abs().max() < 1e-5


def test_synthesis_protocol(tiny):
    """The StyleGAN2 protocol: w or w+ input, no noise maps (empty lists, None entries)."""
    w = tiny.mapping(torch.randn(2, tiny.z_dim, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        a = tiny.synthesis(w)
        b = tiny.synthesis(w.unsqueeze(1).expand(-1, tiny.num_ws, -1), noise=[], noise_mode="random")
        c = tiny.synthesis(w, noise=[None, None])
    assert torch.equal(a, b) and torch.equal(a, c)
    assert tiny.synthesis.make_noise(3) == [] and tiny.synthesis.layers() == []
    with pytest.raises(UsageError, match="no noise"):
        tiny.synthesis(w, noise=[torch.zeros(2, 1, 16, 16)])
    with pytest.raises(UsageError, match="ws must be"):
        tiny.synthesis(w[:, :-1])
    with torch.no_grad():
        bf = tiny.synthesis(w, dtype=torch.bfloat16)
    assert bf.dtype == torch.float32 and (bf - a).abs().max() < 0.1


# ----------------------------------------------------------------------------
# The filtered leaky ReLU: fast path against the reference


@pytest.mark.parametrize(
    "up,down,taps_up,taps_down,padding,radial",
    [
        (2, 2, 12, 12, (11, 10, 11, 10), False),
        (2, 2, 12, 12, (10, 10, 10, 10), False),
        (4, 2, 24, 12, (15, 14, 13, 16), False),
        (2, 4, 12, 8, (-1, 3, 2, -2), True),
        (1, 2, 1, 12, (2, 1, 2, 1), False),
        (2, 1, 12, 1, (5, 6, 5, 6), False),
        (1, 1, 1, 1, (1, -1, 0, 2), False),
        (1, 1, 1, 1, (0, 0, 0, 0), False),
        (3, 2, 7, 5, (4, 2, 3, 3), True),
    ],
)
def test_filtered_lrelu_fast_equals_reference(up, down, taps_up, taps_down, padding, radial):
    g = torch.Generator().manual_seed(up * 10 + down)
    x = torch.randn(2, 5, 14, 17, generator=g)
    b = torch.randn(5, generator=g)
    fu = torch.rand(taps_up, generator=g) if taps_up > 1 else None
    fd = (
        (torch.rand(taps_down, taps_down, generator=g) if radial else torch.rand(taps_down, generator=g))
        if taps_down > 1
        else None
    )
    x0 = x.clone()
    for clamp in (None, 0.8):
        for gain, slope in ((ops.LRELU_GAIN, 0.2), (1.0, 1.0)):
            ref = ops.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, impl="reference")
            fast = ops.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp)
            assert ref.shape == fast.shape == (2, 5) + ops.filtered_lrelu_size((14, 17), fu, fd, up, down, padding)
            assert (ref - fast).abs().max() < 1e-5 * max(1.0, float(ref.abs().max()))
    assert torch.equal(x, x0)  # the input is never written


# ----------------------------------------------------------------------------
# Import of network pickles


def _pickle(tmp_path, G, **kw):
    path = tmp_path / "network-snapshot.pkl"
    write_stylegan3_pickle(path, G, marker=str(tmp_path / "pwned"), **kw)
    return path


def test_pickle_imports_to_the_module_it_came_from(tmp_path, tiny):
    m = read_any(_pickle(tmp_path, tiny))
    assert m.family == "stylegan3" and m.config == tiny.cfg.to_dict() and m.source["format"] == "nvidia-pickle"
    sd = tiny.state_dict()
    assert set(m.tensors) == set(sd) and all(torch.equal(m.tensors[k], sd[k]) for k in sd)
    assert not (tmp_path / "pwned").exists()  # module_src was never run


@pytest.mark.parametrize("payload", ["reduce", "global"])
def test_hostile_stylegan3_pickle_is_refused(tmp_path, tiny, payload):
    marker = tmp_path / "pwned"
    evil = HostileReduce(marker) if payload == "reduce" else __import__("collections").Counter(a=1)
    path = _pickle(tmp_path, tiny, layer_attrs={"magnitude_ema_beta": evil})
    with pytest.raises(MocohdError, match="refused to load") as e:
        read_any(path)
    assert "\n" not in str(e.value) and not marker.exists()


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(c_dim=10), "conditional StyleGAN3 generators"),
        (dict(layer_attrs={"padding": [0, 0, 0, 0]}), "unknown architecture: layer L0_.* padding"),
        (dict(extra_kwargs={"num_critical": 7}), "unsupported StyleGAN3 configuration: num_critical"),
        (dict(extra_kwargs={"filter_size": 4}), "unknown architecture"),
    ],
)
def test_unsupported_stylegan3_pickles_are_one_line(tmp_path, tiny, change, message):
    with pytest.raises(MocohdError, match=message) as e:
        read_any(_pickle(tmp_path, tiny, **change))
    assert "\n" not in str(e.value)


def test_info_shows_the_variant_and_its_design(capsys, tmp_path, tiny):
    """`mocohd info` on a StyleGAN3 (stored, or a pickle it does not import): T or R and the
    hyper-parameters of the layer design, besides what it shows for StyleGAN2."""
    code, out, err = run(capsys, "info", str(_pickle(tmp_path, tiny)))
    assert code == 0, err
    out = " ".join(out.split())  # rows wrapped at the terminal's width, joined
    for expected in (
        "stylegan3",
        "not imported",
        "16 x 16",
        "z 32, w 32",
        "base 512, max 32, mapping layers 2",
        "T (translation equivariant: 3x3 convolutions)",
        "6 + toRGB (2 critically sampled), 8 w's",
        "margin 4 px",
        "no noise inputs",
        "cutoff 2 -> 8",
        "stopband 4.287 -> 9.849 (x1.231)",
        "6 taps per rate",
        "leaky ReLU at 2x",
        "scale 0.25, conv clamp 256.0",
    ):
        assert expected in out, expected
    G, _ = _case("r16")
    path = tmp_path / "r16.safetensors"
    canonical.save_model(path, G.state_dict(), kind="image", family="stylegan3", config=G.cfg.to_dict())
    code, out, err = run(capsys, "info", str(path))
    assert code == 0, err
    out = " ".join(out.split())
    assert "R (rotation equivariant: 1x1 convolutions, radial down-sampling filters)" in out
    assert "base 1024, max 48" in out and "conv clamp 0.5" in out and "stylegan2" not in out
    H = StyleGAN3Generator(StyleGAN3Config.from_dict({**tiny.cfg.to_dict(), "conv_kernel": 1})).eval()
    canonical.save_model(
        tmp_path / "c.safetensors", H.state_dict(), kind="image", family="stylegan3", config=H.cfg.to_dict()
    )
    code, out, err = run(capsys, "info", str(tmp_path / "c.safetensors"))
    assert code == 0, err
    assert "custom (1x1 convolutions, radial filters off)" in " ".join(out.split())


def test_changed_filter_is_refused(tmp_path, tiny):
    G = StyleGAN3Generator(tiny.cfg).eval()
    G.load_state_dict(tiny.state_dict())
    name = next(k for k in G.state_dict() if k.endswith("down_filter"))
    G.get_buffer(name).mul_(1.01)
    with pytest.raises(MocohdError, match="not the low-pass filter its config designs"):
        read_any(_pickle(tmp_path, G))


# ----------------------------------------------------------------------------
# In the video pipeline


@pytest.fixture(scope="module")
def lively(tiny):
    """``tiny`` with mapping weights at their initial scale (1 / lr_mul), so that w's vary."""
    G = StyleGAN3Generator(tiny.cfg).eval()
    G.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        for i in range(G.cfg.mapping_layers):
            getattr(G.mapping, f"fc{i}").weight.mul_(1 / G.cfg.mapping_lr_mul)
    return G


def test_pca_motion_render_and_truncation(tmp_path, lively):
    tiny = lively

    basis = fit_pca(tiny, samples=1000, batch=250)
    assert basis.components.shape[1] == tiny.w_dim
    torch.manual_seed(0)
    M = MotionGenerator(
        MotionConfig(w_dim=tiny.w_dim, noise_dim=8, h_dim=8, n_pca=6, w_residual=1.0),
        basis.components[:6],
        basis.stdev[:6],
    )
    for noise in ("fixed", "random", "off"):
        frames = list(R.render_frames(M, tiny, 3, videos=2, truncation=0.7, noise=noise, batch=4))
        assert len(frames) == 3 and frames[0].shape == (2, 16, 16, 3) and frames[0].dtype == torch.uint8
    assert not torch.equal(frames[0], frames[2])  # it moves

    w = tiny.mapping(torch.randn(3, tiny.z_dim, generator=torch.Generator().manual_seed(4)))
    noise = VideoNoise(tiny, 3, "fixed", torch.Generator().manual_seed(0))
    with torch.no_grad():
        img = synthesize(tiny, w, noise(torch.arange(3)), truncation=0.5)
        ref = tiny.synthesis(tiny.mapping.w_avg.lerp(w, 0.5))
    assert torch.equal(img, ref)


def test_motion_gan_clips_flow_through_stylegan3(lively):
    tiny = lively
    G = StyleGAN3Generator(tiny.cfg).eval().requires_grad_(False)
    G.load_state_dict(tiny.state_dict())
    torch.manual_seed(0)
    components, _ = torch.linalg.qr(torch.randn(tiny.w_dim, 4))
    M = MotionGenerator(MotionConfig(w_dim=tiny.w_dim, noise_dim=8, h_dim=8, n_pca=4), components.T, torch.ones(4))
    cfg = GANConfig(
        domain="in", frames=3, frame_size=16, world_batch=2, dv_channels=4, di_channels=4, proj_dim=8, queue=8
    )
    gan = MotionGAN(G, M.train(), cfg, seed=1)
    out = gan.fake_clips(2)
    clips = out[0] if isinstance(out, tuple) else out
    assert clips.shape[:2] == (2, 3) and clips.shape[-2:] == (16, 16)
    clips.float().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in M.parameters())


# ----------------------------------------------------------------------------
# On the device of MOCOHD_TEST_DEVICE (benchmarks/gpu_check.py runs `-m device` on CUDA)


@pytest.mark.device
@pytest.mark.parametrize("name", ["t32", "r32"])
def test_stylegan3_synthesis_matches_cpu(name):
    G, t = _case(name)
    G.requires_grad_(False)
    dev = devices.test_device()
    w = G.mapping(t["z"], truncation_psi=0.7)
    ref = G.synthesis(w)
    Gd = copy.deepcopy(G).to(dev)
    with devices.exact_fp32():  # both paths: with TF32 the reference one misses 1e-4 by 20x on a GPU
        out = Gd.synthesis(w.to(dev))
        reference = Gd.synthesis(w.to(dev), impl="reference")
    assert (out.cpu() - ref).abs().max() < 1e-4 * max(1.0, float(ref.abs().max()))
    assert (reference.cpu() - ref).abs().max() < 1e-4 * max(1.0, float(ref.abs().max()))
    for dtype in (torch.bfloat16, torch.float16):
        if dtype == torch.float16 and dev.type == "cpu":
            continue  # CPU autocast has no float16
        low = Gd.synthesis(w.to(dev), dtype=dtype)
        assert low.dtype == torch.float32 and torch.isfinite(low).all()
        assert devices.psnr(low, ref) >= 25, dtype


def test_two_motion_training_steps_on_a_stylegan3(tmp_path, lively):
    """`mocohd train` with a StyleGAN3 image generator: two steps, the motion exported, rendered."""
    gpath = tmp_path / "sg3.safetensors"
    canonical.save_model(gpath, lively.state_dict(), kind="image", family="stylegan3", config=lively.cfg.to_dict())
    pca_for(str(gpath), samples=1000, batch=500)
    data = write_dataset(tmp_path / "heads", videos=3, frames=10, size=16, seed=0)
    r = train(
        TrainConfig(
            data=str(data),
            image=str(gpath),
            name="sg3",
            steps=2,
            batch=2,
            frames=4,
            h_dim=8,
            dv_channels=4,
            di_channels=4,
            proj_dim=8,
            queue=8,
            workers=0,
            pca_samples=1000,
            sample_every=1000,
            log_every=1,
            device="cpu",
        )
    )
    assert r.step == 2 and r.motion.is_file() and all(math.isfinite(v) for v in r.losses.values())
    out = R.render(tmp_path / "v", R.RenderConfig(motion="sg3", image=str(gpath), frames=3, device="cpu"))
    assert out.frames == 3 and out.cross_domain is None


def test_the_camera_track_moves_the_view_and_leaves_frame_0(tmp_path, lively, capsys):
    """render --rotate / --translate / --shake: StyleGAN3's input transform per frame, frame 0 untouched;
    the camera is exactly NVIDIA's user transform (its inverse in the input's buffer)."""
    G = lively
    w = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(2)))
    cam = camera_matrix(torch.tensor([30.0, 30.0]), torch.tensor([0.1, 0.1]), torch.tensor([0.0, 0.0]))
    with torch.no_grad():
        moved = G.synthesis(w, camera=cam)
        same = G.synthesis(w, camera=camera_matrix(torch.zeros(2), torch.zeros(2), torch.zeros(2)))
        H = copy.deepcopy(G)
        H.synthesis.input.transform.copy_(torch.linalg.inv(cam[0]))
        by_buffer = H.synthesis(w)
        plain = G.synthesis(w)
    assert torch.allclose(same, plain, atol=1e-6) and torch.allclose(moved, by_buffer, atol=1e-5)
    assert (moved - plain).abs().mean() > 0.05

    basis = fit_pca(G, samples=1000, batch=250)
    torch.manual_seed(0)
    M = MotionGenerator(
        MotionConfig(w_dim=G.w_dim, noise_dim=8, h_dim=8, n_pca=6, w_residual=0.0),
        basis.components[:6],
        basis.stdev[:6],
    )  # a motion that stands still: only the camera moves
    still = list(R.render_frames(M, G, 4, videos=1, seed=1))
    turned = list(R.render_frames(M, G, 4, videos=1, seed=1, camera=R.Camera(rotate=90, fps=4)))
    shaken = list(R.render_frames(M, G, 4, videos=1, seed=1, camera=R.Camera(shake=10, fps=4, seed=1)))
    assert torch.equal(turned[0], still[0]) and torch.equal(shaken[0], still[0])  # frame 0 is never moved
    assert (
        torch.equal(still[3], still[0])
        and not torch.equal(turned[3], still[3])
        and not torch.equal(shaken[3], still[3])
    )
    assert torch.equal(
        torch.stack(shaken),
        torch.stack(list(R.render_frames(M, G, 4, videos=1, seed=1, camera=R.Camera(shake=10, fps=4, seed=1)))),
    )
    with pytest.raises(UsageError, match="camera: shake must be >= 0"):
        R.Camera(shake=-1)
    no_camera = R.RenderConfig(motion="demo", image="demo", frames=2, device="cpu")
    demo = R.render(tmp_path / "d", no_camera)  # no camera: fine
    assert demo.frames == 2
    with pytest.raises(UsageError, match="moves StyleGAN3's input; 'demo' is stylegan2"):
        R.render(tmp_path / "e", R.RenderConfig(motion="demo", image="demo", frames=2, rotate=10, device="cpu"))


def test_absurd_camera_values_are_refused_in_one_line(tmp_path, lively, capsys):
    """Regression: finite but absurd values (--translate 1e308,0, and --rotate, --shake) gave a NaN camera
    and black frames with exit 0. The ranges (render.Camera): half a turn and one image width per frame,
    a shake of 180 degrees, a track within 10^4 image widths; the generator refuses a camera matrix
    that is not finite, not invertible or beyond that reach."""
    import imageio.v3 as iio

    from mocohd_cli.loaders.motion_models import save_motion

    G = lively
    gpath, mpath = tmp_path / "sg3.safetensors", tmp_path / "m.safetensors"
    canonical.save_model(gpath, G.state_dict(), kind="image", family="stylegan3", config=G.cfg.to_dict())
    basis = fit_pca(G, samples=1000, batch=250)
    torch.manual_seed(0)
    M = MotionGenerator(
        MotionConfig(w_dim=G.w_dim, noise_dim=8, h_dim=8, n_pca=6), basis.components[:6], basis.stdev[:6]
    )
    save_motion(mpath, M)
    out = tmp_path / "v"
    cli = [
        "render",
        str(out),
        "--motion",
        str(mpath),
        "--image",
        str(gpath),
        "-n",
        "3",
        "--format",
        "png",
        "--device",
        "cpu",
        "--fps",
        "12",
    ]
    for extra, said in (
        (
            ["--translate", "1e308,0"],
            "translate must be at most 1 image width per frame on each axis (12 per second at 12 fps), got 1e+308,0",
        ),
        (["--translate", "0,-13"], "translate must be at most 1 image width per frame"),
        (
            ["--rotate", "1e308"],
            "rotate must be at most 180 degrees per frame either way (2160 per second at 12 fps), got 1e+308",
        ),
        (["--rotate", "-2161"], "rotate must be at most 180 degrees per frame"),
        (["--shake", "1e308"], "shake must be at most 180 degrees, got 1e+308"),
        (
            ["--translate", "6,0", "-n", "30000"],
            "the translation reaches 1.5e+04 image widths by frame 30000; at most 10000",
        ),
    ):
        code, _, err = run(capsys, *cli, *extra)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: camera: ") and said in lines[0], err
        assert "Traceback" not in err and not out.exists()
    code, _, err = run(
        capsys, *cli, "--rotate", "2160", "--translate", "12,-12", "--shake", "180"
    )  # the extremes: fine
    assert code == 0, err
    frames = [torch.from_numpy(iio.imread(f)) for f in sorted(out.glob("*.png"))]
    assert len(frames) == 3 and all(f.float().std() > 1 for f in frames)  # not black
    # the library: the same ranges, and the track's reach by render_frames
    with pytest.raises(UsageError, match="^camera: rotate must be at most 180 degrees per frame"):
        R.Camera(rotate=1e308)
    with pytest.raises(UsageError, match="^camera: the translation reaches 2e\\+04 image widths by frame 20001"):
        R.render_frames(M, G, 20001, camera=R.Camera(translate=(1.0, 0.0), fps=1))
    w = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0)))
    for bad in (
        camera_matrix(torch.zeros(3), torch.tensor([0.0, 1e308, 0.0]), torch.zeros(3)),  # inf
        camera_matrix(torch.zeros(3), torch.tensor([0.0, 2e4, 0.0]), torch.zeros(3)),  # too far
        torch.zeros(3, 3, 3),
        torch.full((3, 3, 3), float("nan")),
    ):
        with pytest.raises(UsageError, match="^camera: each \\[3, 3\\] camera must be finite and invertible"):
            G.synthesis(w, camera=bad)


# ----------------------------------------------------------------------------
# benchmarks/bench_stylegan3.py cannot rot: FLOP count and a --quick run


BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_stylegan3.py"


@pytest.fixture(scope="module")
def bench():
    """The benchmark script as a module (sys.path as it was before)."""
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location("bench_stylegan3", BENCH)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


@pytest.mark.parametrize("name", ["t", "r"])
def test_benchmark_flops_are_the_fast_path_as_run(bench, name):
    """The analytic FLOP count (dense convolutions, 2-D filters, matrix products) is what torch's
    FlopCounterMode counts on one forward of the fast path; at NVIDIA's sizes the dense
    convolutions of T at 256 px are 463 GFLOP."""
    cfg = bench.bench_config(name, 16, quick=True)
    torch.manual_seed(0)
    G = StyleGAN3Generator(cfg).eval()
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, cfg.z_dim)).unsqueeze(1).repeat(1, cfg.num_ws, 1)
    analytic = bench.synthesis_flops(cfg)
    assert sum(analytic.values()) == bench.counted_flops(lambda w: G.synthesis(w), ws)
    assert min(analytic.values()) > 0
    assert round(bench.synthesis_flops(StyleGAN3Config.preset("t", 256))["conv"] / 1e9) == 463


def test_benchmark_quick_run(tmp_path):
    """One --quick run (tiny config, no NVIDIA code) reports every figure the full run does."""
    out = tmp_path / "sg3.json"
    env = {k: v for k, v in os.environ.items() if k not in ("MOCOHD_DEBUG", "PYTEST_ADDOPTS")}
    p = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--threads", "1", "--batches", "1", "2", "--json", str(out)],
        cwd=BENCH.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    d = json.loads(out.read_text())
    rows = {(r["path"], r["dtype"], r["batch"]): r for r in d["rows"]}
    assert set(rows) == {
        ("fast", "fp32", 1),
        ("fast", "fp32", 2),
        ("fast", "bf16", 1),
        ("fast", "bf16", 2),
        ("reference", "fp32", 1),
    }
    assert d["quick"] and d["nvidia"] is None and d["threads"] == 1
    assert d["gflop_per_frame"] == pytest.approx(sum(d["analytic_gflop"].values()), rel=1e-9)
    assert all(d["peaks"][k]["conv_gflops"] > 0 for k in ("fp32", "bf16"))
    for key, r in rows.items():
        assert math.isfinite(r["frames_per_s"]) and r["frames_per_s"] > 0, key
        assert r["rss_mb"] > 0 and r["synthesis_mb"] >= 0, key
        assert ("conv_peak_pct" in r) == (key[0] == "fast") and r.get("conv_peak_pct", 1) > 0, key
    assert rows[("fast", "fp32", 1)]["max_abs_diff"] == 0
    assert rows[("reference", "fp32", 1)]["max_abs_diff"] < 1e-4
    assert rows[("fast", "bf16", 1)]["psnr_db"] > 25
    assert "| T, 16 px | mocohd fast | bf16 | 2 |" in p.stdout and "% conv peak" in p.stdout
