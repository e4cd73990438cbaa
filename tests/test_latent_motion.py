"""Motion trained against latent trajectories (discriminators/trajectory.py, the latent modes of
train/motion_gan.py): the discriminator's input by hand, fakes that start at the real clips' first
latents, and a known answer: two movements at two rhythms, both recovered."""

import math

import pytest
import torch

from mocohd_cli.discriminators.trajectory import TrajectoryDiscriminator, pca_coordinates
from mocohd_cli.errors import UsageError
from mocohd_cli.motion import MotionConfig, MotionGenerator
from mocohd_cli.motion.stats import motion_stats
from mocohd_cli.train.config import TrainConfig
from mocohd_cli.train.motion_gan import GANConfig, MotionGAN

from .conftest import randomized_generator, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny training steps (tests/conftest.py)

W_DIM, N_PCA, FRAMES = 32, 8, 16


def test_the_discriminator_sees_displacements_along_each_direction_in_stdevs():
    components = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]])
    stdev = torch.tensor([2.0, 0.5])
    ws = torch.tensor([[[1.0, 1.0, 1.0], [3.0, 1.0, 1.0], [1.0, 1.6, 1.8]]])  # [1, 3, 3]
    # t=1: moved (2, 0, 0): 2/2 = 1 along the first, 0 along the second;
    # t=2: moved (0, .6, .8): 0 along the first, (.36 + .64) / .5 = 2 along the second
    expected = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]])
    assert torch.allclose(pca_coordinates(ws, components, stdev), expected)
    D = TrajectoryDiscriminator(2, width=8, layers=3, scales=2)
    out = D(expected.transpose(1, 2))
    assert [o[-1].shape for o in out] == [(1, 1, 3), (1, 1, 2)]
    with pytest.raises(ValueError, match=r"expected coordinates \[B, 2, T\]"):
        D(expected)


def tiny_gan(motion_d="latent", seed=0, w_residual=1.0, encoder=None, **kw):
    G = randomized_generator(tiny_config(16, z_dim=W_DIM, w_dim=W_DIM))
    torch.manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(W_DIM, W_DIM))[0].T[:N_PCA]  # orthonormal rows
    mcfg = MotionConfig(w_dim=W_DIM, noise_dim=16, h_dim=64, n_pca=N_PCA, w_residual=w_residual)
    M = MotionGenerator(mcfg, basis, torch.ones(N_PCA))
    cfg = dict(domain="in", frames=FRAMES, frame_size=16, motion_d=motion_d, lr=1e-3, dl_channels=32, dv_channels=8)
    cfg.update(kw)
    return MotionGAN(G, M, GANConfig(**cfg), seed=seed, encoder=encoder), basis


def two_movements(basis, n, g, periods=(4.0, 10.0), amplitude=0.5):
    """[n, T, w_dim]: independent sinusoids along directions 0 and 1 (random phases), from random w_1."""
    t = torch.arange(FRAMES, dtype=torch.float32)
    phase = torch.rand(n, 2, generator=g) * 2 * math.pi
    coef = amplitude * torch.sin(2 * math.pi * t[None, :, None] / torch.tensor(periods) + phase[:, None])
    coef = coef - coef[:, :1]
    w1 = torch.randn(n, W_DIM, generator=g)
    return w1[:, None] + coef @ basis[:2]


def test_fakes_start_at_the_real_clips_first_latents_and_need_them():
    gan, basis = tiny_gan("both")
    real_ws = two_movements(basis, 2, torch.Generator().manual_seed(0))
    x = torch.rand(2, FRAMES, 3, 16, 16) * 2 - 1
    starts = []
    forward = gan.M.forward
    gan.M.forward = lambda w1, *a, **k: starts.append(w1.clone()) or forward(w1, *a, **k)
    losses = gan.iteration(x, real_ws)
    assert len(starts) == gan.cfg.g_steps + 1 and all(torch.equal(s, real_ws[:, 0]) for s in starts)
    assert {"G_latent", "D_latent_real", "gp_latent", "G_video", "D_video_real"} <= set(losses)
    assert set(gan.state_dict()) >= {"D_L", "opt_L"}
    with pytest.raises(UsageError, match="latent trajectories"):
        gan.iteration(x)
    pixels, _ = tiny_gan("pixels")
    assert "D_L" not in pixels.state_dict() and not hasattr(pixels, "D_L")


def test_encoded_fakes_are_judged_through_the_encoder_as_the_real_clips_are():
    """With encode_fakes, D_L's fakes are the encoder's answers for the rendered frames (per-layer
    w's averaged, as the trajectory cache's), the gradient reaches the motion model through the
    generator and the encoder, and the encoder itself stays frozen."""
    from mocohd_cli.encoders import EncoderConfig, ImageEncoder

    num_ws = tiny_gan("latent")[0].G.num_ws
    torch.manual_seed(3)
    ecfg = EncoderConfig(resolution=16, w_dim=W_DIM, num_ws=num_ws, channel_base=256, channel_max=16, hidden=32)
    E = ImageEncoder(ecfg)
    torch.nn.init.normal_(E.fc1.weight, std=0.1)  # not the zero start: the answers depend on the image
    with pytest.raises(UsageError, match="encoder"):
        tiny_gan("latent", encode_fakes=True)
    with pytest.raises(UsageError, match="latent or both"):
        GANConfig(motion_d="pixels", encode_fakes=True)
    gan, basis = tiny_gan("latent", encode_fakes=True, encoder=E)
    real_ws = two_movements(basis, 2, torch.Generator().manual_seed(0))
    drawn = []
    draws = gan.draws
    gan.draws = lambda *a, **k: drawn.append(draws(*a, **k)) or drawn[-1]
    ws, eps, eps_rec, clips, judged = gan.fakes(2, real_ws[:, 0])
    assert clips is None and torch.equal(ws[:, 0], real_ws[:, 0])
    _, _, noise, labels = drawn[0]  # the fakes' own per-video noise
    frames = gan.synthesize(ws.detach(), noise, labels)
    expected = E(frames.clamp(-1, 1)).mean(dim=1).reshape(2, FRAMES, W_DIM)
    assert torch.allclose(judged.detach(), expected, atol=1e-5)
    assert not torch.allclose(judged.detach(), ws.detach(), atol=1e-2)  # not the fakes' own w's
    judged.square().sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.M.parameters())
    assert all(p.grad is None for p in E.parameters())
    losses = gan.iteration(torch.rand(2, FRAMES, 3, 16, 16) * 2 - 1, real_ws)
    assert {"G_latent", "D_latent_real"} <= set(losses) and "G_video" not in losses


def test_latent_cross_spectrum_sees_directions_locked_together():
    """The latent cross-spectrum term compares PCA coordinates: fakes moving the same two
    directions at the same rhythms as the real clips cost little when their phases are
    independent, and much more when the two are locked at one phase (a cross term the real
    clips lack). It enters the motion model's loss, and needs the latent trajectories."""
    gan, basis = tiny_gan("both", w_latent_cross_spectrum=1.0)
    g = torch.Generator().manual_seed(1)
    real = two_movements(basis, 64, g, periods=(4.0, 4.0))
    independent = two_movements(basis, 64, g, periods=(4.0, 4.0))
    t = torch.arange(FRAMES, dtype=torch.float32)
    phase = torch.rand(64, 1, generator=g) * 2 * math.pi
    wave = 0.5 * torch.sin(2 * math.pi * t[None, :] / 4.0 + phase)
    wave = wave - wave[:, :1]
    locked = torch.randn(64, W_DIM, generator=g)[:, None] + wave[..., None] * (basis[0] + basis[1])
    cost_independent = float(gan._latent_cross_spectrum(gan.coordinates(independent), gan.coordinates(real)))
    cost_locked = float(gan._latent_cross_spectrum(gan.coordinates(locked), gan.coordinates(real)))
    assert abs(cost_independent) < 0.2 and cost_locked > 0.5, (cost_independent, cost_locked)
    x = torch.rand(2, FRAMES, 3, 16, 16) * 2 - 1
    assert "latent_cross_spectrum" in gan.iteration(x, real[:2])
    with pytest.raises(UsageError, match=r"needs motion_d \(--motion-d\) latent or both"):
        TrainConfig(w_latent_cross_spectrum=1.0)


def test_a_latent_pool_compares_the_last_real_clips_with_as_many_fresh_fakes(monkeypatch):
    """With ``latent_pool`` N, the latent cross-spectrum compares the last N real clips' coordinates
    (the oldest replaced first) with N fakes drawn from their first latents, no frame rendered; the
    pool is part of the state a resume restores."""
    from mocohd_cli.train import motion_gan

    gan, basis = tiny_gan("both", w_latent_cross_spectrum=1.0, latent_pool=6)
    g = torch.Generator().manual_seed(2)
    batches = [two_movements(basis, 2, g) for _ in range(4)]
    x = torch.rand(2, FRAMES, 3, 16, 16) * 2 - 1
    seen = []
    real_term = motion_gan.losses.cross_spectrum_matching
    monkeypatch.setattr(
        motion_gan.losses, "cross_spectrum_matching", lambda f, r, **kw: seen.append((f, r)) or real_term(f, r, **kw)
    )
    for real_ws in batches:
        gan.iteration(x, real_ws)
    # after 4 batches of 2 in a pool of 6: the 4th batch took the places of the 1st
    expected = torch.cat([gan.real_coordinates(b) for b in (batches[3], batches[1], batches[2])])
    coords, w1 = gan.pool.contents()
    assert torch.allclose(coords, expected) and torch.equal(w1, torch.cat([batches[i][:, 0] for i in (3, 1, 2)]))
    per_iteration = gan.cfg.g_steps  # motion updates, each with its own fakes
    assert [f.shape[0] for f, _ in seen] == [n for n in (2, 4, 6, 6) for _ in range(per_iteration)]
    assert torch.allclose(seen[-1][1], expected.transpose(1, 2)) and not torch.equal(seen[-1][0], seen[-2][0])
    again, _ = tiny_gan("both", w_latent_cross_spectrum=1.0, latent_pool=6, seed=5)
    again.load_state_dict(gan.state_dict())  # a resume
    assert "pool" in gan.state_names and torch.equal(again.pool.contents()[0], coords)
    assert int(again.pool.added) == 8
    base = dict(encoder="e", motion_d="both", batch=8)
    with pytest.raises(UsageError, match=r"latent_pool \(--latent-pool\) sets how many .* needs w_latent_cross"):
        TrainConfig(latent_pool=64, **base)
    with pytest.raises(UsageError, match=r"latent_pool \(--latent-pool\) must be 0 or in \[batch"):
        TrainConfig(latent_pool=4, w_latent_cross_spectrum=1.0, **base)
    with pytest.raises(UsageError, match=r"needs motion_d \(--motion-d\) latent or both"):
        TrainConfig(latent_pool=64, w_latent_cross_spectrum=1.0)


def test_the_encoder_calibration_measures_a_known_gain_and_undoes_or_imitates_it(monkeypatch):
    """A stand-in encoder that reports each principal direction's step at a known gain (0.5, 0.25,
    ...) and leaks 0.2 of the first into the second: the calibration fitted on the generator's
    samples is the inverse of that gain matrix, and the real clips' coordinates D_L sees are the
    encoded ones corrected by it."""
    from mocohd_cli.train import motion_gan

    gan, basis = tiny_gan("both")
    V, s = basis, torch.linspace(2.0, 0.5, N_PCA)
    gain = torch.diag(torch.tensor([0.5, 0.25, 1.0, 0.8, 0.6, 1.2, 0.4, 0.9]))
    gain[1, 0] = 0.2  # direction 0's movement partly reported along direction 1
    rendered = []

    def synthesize(G, ws, noise, labels, truncation):  # the frames carry their w's to the stand-in
        rendered.append(ws)
        return torch.zeros(ws.shape[0], 3, 16, 16)

    class Encoder(torch.nn.Module):
        def forward(self, images):
            w = rendered[-1]
            c = (w @ V.T) / s
            return (w + ((c @ gain.T - c) * s) @ V)[:, None]  # [N, 1, w_dim]

    monkeypatch.setattr(motion_gan, "synthesize", synthesize)
    measured, cov = motion_gan.encoder_gain(gan.G, Encoder(), V, s, pairs=64)
    assert torch.allclose(measured, gain, atol=1e-4) and cov.abs().max() < 1e-8, (measured, cov)
    C = motion_gan.inverse_gain(measured, ridge=1e-6)
    assert torch.allclose(C @ gain, torch.eye(N_PCA), atol=1e-3), C @ gain
    with pytest.raises(UsageError, match="more pairs than directions"):
        motion_gan.encoder_gain(gan.G, Encoder(), V, s, pairs=N_PCA)
    real_ws = two_movements(basis, 2, torch.Generator().manual_seed(0))
    gan.M.pca_components, gan.M.pca_stdev = V, s  # the basis the stand-in's gains are along
    coords = gan.coordinates(real_ws)
    gan.calibration = C  # calibration_side reals: the real clips' coordinates with the gain undone
    expected = torch.einsum("kj,bjt->bkt", C, coords)
    assert torch.allclose(gan.real_coordinates(real_ws), expected) and not torch.allclose(expected, coords)
    # calibration_side fakes: the fakes' coordinates get the gain, and an error per frame (none at frame 0)
    gan.calibration, gan.fake_gain, gan.fake_noise = None, gain, torch.zeros(N_PCA, N_PCA)
    assert torch.allclose(gan.fake_coordinates(real_ws), torch.einsum("kj,bjt->bkt", gain, coords))
    gan.fake_noise = 0.1 * torch.eye(N_PCA)
    many = real_ws.repeat(64, 1, 1)
    error = gan.fake_coordinates(many) - torch.einsum("kj,bjt->bkt", gain, gan.coordinates(many))
    assert error[..., 0].abs().max() < 1e-6 and abs(float(error[..., 1:].std()) - 0.1 * 2**0.5) < 0.01
    # calibration_side both: reported so, then corrected by C as the real clips are
    C = torch.diag(torch.linspace(0.5, 3.0, N_PCA))
    gan.calibration, gan.fake_noise = C, torch.zeros(N_PCA, N_PCA)
    want = torch.einsum("kj,bjt->bkt", C @ gain, coords)
    assert torch.allclose(gan.fake_coordinates(real_ws), want, atol=1e-6)
    assert torch.allclose(gan.real_coordinates(real_ws), torch.einsum("kj,bjt->bkt", C, coords))
    gan.fake_noise = 0.1 * torch.eye(N_PCA)
    error = gan.fake_coordinates(many) - torch.einsum("kj,bjt->bkt", C @ gain, gan.coordinates(many))
    spread = error[..., 1:].std(dim=(0, 2)) / (0.1 * 2**0.5)  # per direction: the error through C's diagonal
    assert error[..., 0].abs().max() < 1e-6 and torch.allclose(spread, torch.linspace(0.5, 3.0, N_PCA), rtol=0.05)
    gan.fake_gain = None  # no calibration on the fakes' side (reals): their coordinates as they are
    assert torch.equal(gan.fake_coordinates(real_ws), coords)


def test_training_with_a_calibrated_encoder_runs_and_needs_the_latent_judge():
    from mocohd_cli.encoders import EncoderConfig, ImageEncoder

    num_ws = tiny_gan("latent")[0].G.num_ws
    torch.manual_seed(3)
    E = ImageEncoder(
        EncoderConfig(resolution=16, w_dim=W_DIM, num_ws=num_ws, channel_base=256, channel_max=16, hidden=32)
    )
    torch.nn.init.normal_(E.fc1.weight, std=0.1)
    x = torch.rand(2, FRAMES, 3, 16, 16) * 2 - 1
    gan, basis = tiny_gan("both", encoder=E, calibrate_encoder=N_PCA + 1)
    assert gan.calibration.shape == (N_PCA, N_PCA) and torch.isfinite(gan.calibration).all()
    again, _ = tiny_gan("both", encoder=E, calibrate_encoder=N_PCA + 1)
    assert torch.equal(gan.calibration, again.calibration)  # seeded: every rank, and a resume, fit the same
    assert "G_latent" in gan.iteration(x, two_movements(basis, 2, torch.Generator()))
    fakes, _ = tiny_gan("both", encoder=E, calibrate_encoder=N_PCA + 1, calibration_side="fakes")
    assert fakes.calibration is None and fakes.fake_gain.shape == fakes.fake_noise.shape == (N_PCA, N_PCA)
    assert "G_latent" in fakes.iteration(x, two_movements(basis, 2, torch.Generator()))
    both, _ = tiny_gan("both", encoder=E, calibrate_encoder=N_PCA + 1, calibration_side="both")
    assert torch.equal(both.calibration, gan.calibration) and torch.equal(both.fake_gain, fakes.fake_gain)
    assert both.fake_noise.shape == (N_PCA, N_PCA) and "G_latent" in both.iteration(
        x, two_movements(basis, 2, torch.Generator())
    )
    with pytest.raises(UsageError, match="calibrate_encoder needs"):
        tiny_gan("pixels", encoder=E, calibrate_encoder=N_PCA + 1)
    with pytest.raises(UsageError, match="calibration_side must be one of reals, fakes, both, got 'half'"):
        GANConfig(calibration_side="half")
    with pytest.raises(UsageError, match=r"calibrate_encoder \(--calibrate-encoder\) corrects"):
        TrainConfig(calibrate_encoder=64)


def test_a_tiny_two_movement_run_moves_both_directions_at_their_own_periods():
    """Known answer: real trajectories move along two directions at periods 4 and 10 frames with
    independent phases; the latent mode (no frame rendered) learns both, each at its own period and
    with its share of the motion, inside their span (coarse thresholds, seeded, about 20 s)."""
    torch.manual_seed(0)
    gan, basis = tiny_gan("latent", g_steps=1, lr=3e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(32, FRAMES, 3, 16, 16)  # unused by the latent discriminator alone
    for _ in range(600):  # on one thread (pytestmark): operations this small only lose time to a second
        gan.iteration(x, two_movements(basis, 32, g))
    with torch.no_grad():
        real = two_movements(basis, 256, g)
        fake, _, _ = gan.M(real[:, 0], FRAMES, generator=torch.Generator().manual_seed(2), return_eps=True)
    truth, learned = motion_stats(real, basis[:2]), motion_stats(fake, basis[:2])
    for p, q in zip(learned.periods.tolist(), truth.periods.tolist(), strict=True):
        assert abs(p / q - 1) < 0.25, (learned.to_dict(), truth.to_dict())
    for p, q in zip(learned.shares.tolist(), truth.shares.tolist(), strict=True):
        assert abs(p - q) < 0.15, (learned.to_dict(), truth.to_dict())
    assert learned.on_span > 0.8, learned.to_dict()
