"""Numerics: ``runtime.precision`` sets torch's process-wide flags for a block and restores them,
``--deterministic`` turns a missing deterministic kernel into one line, and training's bf16
frames are as close to float32 as rendering's bf16 frames."""

import os

import pytest
import torch

from mocohd_cli.errors import MocohdError
from mocohd_cli.frames import VideoNoise, synthesize
from mocohd_cli.motion import MotionConfig, MotionGenerator
from mocohd_cli.runtime import check_deterministic, precision
from mocohd_cli.train.motion_gan import GANConfig, MotionGAN

from .conftest import randomized_generator, run, tiny_config
from .support.devices import psnr
from .test_stylegan3 import _case

pytestmark = pytest.mark.usefixtures("one_thread")


def flags() -> dict:
    b = torch.backends
    return {
        "matmul_tf32": b.cuda.matmul.allow_tf32,
        "cudnn_tf32": b.cudnn.allow_tf32,
        "benchmark": b.cudnn.benchmark,
        "cudnn_deterministic": b.cudnn.deterministic,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def no_cublas_variable(monkeypatch):
    """CUBLAS_WORKSPACE_CONFIG unset for the test and as it was after it (a deterministic block sets it
    for the process; ``delenv`` alone would not put an absent variable back to absent)."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")


@pytest.fixture
def odd_flags(monkeypatch):
    """Every flag set the other way from torch's defaults, and put back after the test."""
    before = flags()
    no_cublas_variable(monkeypatch)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    yield flags()
    torch.backends.cuda.matmul.allow_tf32 = before["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = before["cudnn_tf32"]
    torch.backends.cudnn.benchmark = before["benchmark"]
    torch.use_deterministic_algorithms(before["deterministic"])
    torch.backends.cudnn.deterministic = before["cudnn_deterministic"]


def test_precision_sets_each_commands_flags_and_restores_them(odd_flags):
    exact = {"matmul_tf32": False, "cudnn_tf32": False, "benchmark": False}
    with precision("cuda"):  # a torch.device is enough: the flags are plain attributes, no GPU needed
        assert flags() == {**odd_flags, **exact}
    assert flags() == odd_flags
    with precision("cuda", tf32=True, benchmark=True):  # training's hot loop
        assert flags() == {**odd_flags, "matmul_tf32": True, "cudnn_tf32": True, "benchmark": True}
        with precision("cuda"):  # PCA, the monitor, fvd16 inside it
            assert flags() == {**odd_flags, **exact}
        assert flags()["matmul_tf32"] and flags()["benchmark"]
    with precision("cpu", tf32=True, benchmark=True):  # CUDA only
        assert flags() == {**odd_flags, **exact}
    assert flags() == odd_flags


def test_deterministic_is_scoped_and_inherited(odd_flags):
    with precision("cuda", tf32=True, benchmark=True, deterministic=True):
        on = flags()
        assert on["deterministic"] and on["cudnn_deterministic"] and not on["benchmark"]
        assert on["cublas"] == ":4096:8"
        with precision("cuda"):  # None: a measurement inside stays deterministic
            assert flags()["deterministic"] and flags()["cudnn_deterministic"]
        with precision("cuda", deterministic=False):
            assert not flags()["deterministic"]
        assert flags() == on
    # the flags are restored; the variable stays for the process: cuBLAS reads it once, at its first use
    assert flags() == {**odd_flags, "cublas": ":4096:8"}
    with pytest.raises(ZeroDivisionError), precision("cpu", deterministic=True):  # restored on errors too
        raise ZeroDivisionError
    assert flags() == {**odd_flags, "cublas": ":4096:8"}


def test_an_op_without_a_deterministic_kernel_is_one_line(odd_flags):
    message = "index_add_cuda_ does not have a deterministic implementation, but you set 'torch.use_..."
    with pytest.raises(MocohdError) as e, precision("cuda:1", deterministic=True):
        raise RuntimeError(message)
    assert str(e.value) == "--deterministic: index_add_cuda_ has no deterministic implementation on cuda:1"
    with pytest.raises(RuntimeError, match="does not have"), precision("cpu"):  # not asked for: as it was
        raise RuntimeError(message)
    with pytest.raises(RuntimeError, match="shape"), precision("cpu", deterministic=True):
        raise RuntimeError("shape mismatch")
    with pytest.raises(MocohdError, match="deterministic must be True or False"):
        check_deterministic("yes")
    assert flags() == {**odd_flags, "cublas": ":4096:8"}  # the variable stays for the process


def test_render_deterministic_on_the_command_line(capsys, tmp_path, pair, monkeypatch):
    no_cublas_variable(monkeypatch)  # render sets it for the process
    g, m = pair
    before = flags()
    out = tmp_path / "frames"
    args = ("-m", str(m), "-i", str(g), "-n", "2", "--format", "png", "--device", "cpu", "--deterministic")
    code, _, err = run(capsys, "render", str(out), *args)
    assert code == 0, err
    assert len(list(out.glob("*.png"))) == 2
    assert {k: v for k, v in flags().items() if k != "cublas"} == {k: v for k, v in before.items() if k != "cublas"}


# ---------------------------------------------------------------- bf16: training's frames are rendering's


def _psnrs(G, ws, bf16_frames) -> tuple[float, float]:
    """(PSNR of ``bf16_frames`` against float32, PSNR of render's bf16 frames against float32)."""
    with torch.no_grad():
        ref = synthesize(G, ws)
        render_bf16 = synthesize(G, ws, dtype=torch.bfloat16)
    return psnr(bf16_frames, ref), psnr(render_bf16, ref)


def test_training_bf16_frames_are_renders():
    """MotionGAN's bf16 frames (``--precision bf16``) against float32 are as close as render's bf16."""
    G = randomized_generator(tiny_config(32, channel_base=1024, channel_max=64))
    basis = torch.linalg.qr(torch.randn(G.w_dim, G.w_dim))[0][:8]
    M = MotionGenerator(MotionConfig(w_dim=G.w_dim, noise_dim=8, h_dim=8, n_pca=8), basis, torch.ones(8))
    small = dict(frame_size=16, world_batch=2, dv_channels=4, di_channels=4, proj_dim=8, queue=4)
    gan = MotionGAN(G, M, GANConfig(frames=3, precision="bf16", **small))
    gen = torch.Generator().manual_seed(0)
    ws = G.mapping(torch.randn(6, G.z_dim, generator=gen)).reshape(2, 3, -1)
    noise = VideoNoise(G, 2, "off")
    with torch.no_grad():
        frames = gan.synthesize(ws, noise)
    train_db, render_db = _psnrs(G, ws.reshape(6, -1), frames)
    assert train_db >= render_db - 0.1 and train_db < 90, (train_db, render_db)


@pytest.mark.parametrize("family", ["stylegan2", "stylegan3"])
def test_autocast_keeps_styles_demodulation_and_the_image_in_float32(family):
    """Under a blanket bf16 autocast the generators keep their float32 parts (styles, demodulation,
    StyleGAN2's image sum, StyleGAN3's Fourier features): about render's bf16 precision. Before,
    StyleGAN2 lost 2 dB to it here and StyleGAN3's features had bf16 phases (44 dB against 51)."""
    if family == "stylegan2":
        G, margin = randomized_generator(tiny_config(32, channel_base=1024, channel_max=64)), 1.0
    else:
        G, margin = _case("t16")[0], 0.1
    ws = G.mapping(torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        frames = synthesize(G, ws)
    autocast_db, render_db = _psnrs(G, ws, frames)
    assert autocast_db >= render_db - margin and autocast_db < 90, (autocast_db, render_db)
    if family == "stylegan3":
        assert render_db > 48, render_db  # the features in float32 (bf16 phases gave 44 dB)
