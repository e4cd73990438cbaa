"""The motion model's oscillator bank (MotionConfig.oscillators): its equations, phases drawn
from the noise, streaming, files, retargeting, statistics and training with it."""

import math

import pytest
import torch

from mocohd_cli import MocohdError
from mocohd_cli.errors import UsageError
from mocohd_cli.formats import canonical
from mocohd_cli.loaders import describe
from mocohd_cli.loaders.motion_models import load_motion, save_motion
from mocohd_cli.motion import FAMILY, MotionConfig, MotionGenerator
from mocohd_cli.motion.stats import motion_stats

from .conftest import run
from .test_motion import _basis, unroll_in_chunks

CFG = MotionConfig(w_dim=12, noise_dim=10, h_dim=8, n_pca=6, w_residual=0.3, oscillators=4)


def _model(seed=0, cfg=CFG):
    torch.manual_seed(seed)
    comps, stdev = _basis(seed)
    M = MotionGenerator(cfg, comps, stdev)
    with torch.no_grad():
        M.osc_move.normal_(0, 0.5)  # movements large enough to matter
    return M


def _bank(periods, moves, cfg=CFG):
    """A model that moves by its oscillators alone (lambda 0): given periods [K] and movements [K, n_pca]."""
    M = _model(cfg=MotionConfig(**{**cfg.to_dict(), "w_residual": 0.0, "oscillators": len(periods)}))
    with torch.no_grad():
        M.osc_log_period.copy_(torch.tensor(periods).log())
        M.osc_move.copy_(torch.as_tensor(moves))
    return M


def test_the_bank_moves_by_its_sinusoids_with_phases_from_the_first_noise():
    moves = torch.zeros(2, 6)
    moves[0, 1], moves[1, 4] = 0.7, 1.5
    M = _bank([5.0, 11.0], moves)
    w1, eps = torch.randn(3, 12), torch.randn(3, 19, 10)
    with torch.no_grad():
        ws = M(w1, 20, eps=eps)
    coords = (ws - w1[:, None]) @ M.pca_components.T / M.pca_stdev  # [B, T, n_pca], in stdevs
    t = torch.arange(20, dtype=torch.float64)[None, :, None]
    phase = 2 * math.pi * torch.special.ndtr(eps[:, 0, :2].double())[:, None]  # uniform phases from eps_1[:K]
    want = torch.sin(2 * math.pi * t / torch.tensor([5.0, 11.0], dtype=torch.float64) + phase) - torch.sin(phase)
    want = want @ moves.double()
    torch.testing.assert_close(coords.double(), want, rtol=0, atol=2e-5)
    assert torch.equal(ws[:, 0], w1)


def test_the_lstm_steps_and_the_bank_add_up():
    M = _model()
    w1, eps = torch.randn(2, 12), torch.randn(2, 9, 10)
    with torch.no_grad():
        ws = M(w1, 10, eps=eps)
        plain = MotionGenerator(MotionConfig(**{**CFG.to_dict(), "oscillators": 0}))
        plain.load_state_dict({k: v for k, v in M.state_dict().items() if not k.startswith("osc_")})
        lstm_only = plain(w1, 10, eps=eps)
        bank = MotionGenerator(MotionConfig(**{**CFG.to_dict(), "w_residual": 0.0}))
        bank.load_state_dict(M.state_dict())
        bank_only = bank(w1, 10, eps=eps)
    torch.testing.assert_close(
        ws - w1[:, None], (lstm_only - w1[:, None]) + (bank_only - w1[:, None]), rtol=1e-4, atol=1e-5
    )
    assert (bank_only - w1[:, None]).abs().max() > 0.1 and (lstm_only - w1[:, None]).abs().max() > 0.01


def test_streaming_in_chunks_equals_one_unroll_and_seeds_repeat():
    whole, streamed, state, again, other = unroll_in_chunks(_model(), torch.randn(2, 12), (1, 0, 7, 31), seed=3)
    torch.testing.assert_close(streamed, whole, rtol=1e-5, atol=1e-5)
    assert state.t == 39 and state.phase.shape == (2, 4)
    assert torch.equal(whole, again) and not torch.allclose(whole, other)


def test_independent_movements_measure_as_independent():
    """Three oscillators along three directions: the statistics find each one's period and no
    coherence between them, unlike one recurrent oscillator driving all three."""
    moves = torch.zeros(3, 6)
    moves[0, 0], moves[1, 2], moves[2, 4] = 0.4, 0.8, 1.3
    M = _bank([5.0, 8.0, 12.0], moves)
    with torch.no_grad():
        ws = M(torch.randn(512, 12), 48, generator=torch.Generator().manual_seed(0))
    s = motion_stats(ws, M.pca_components[[0, 2, 4]])
    assert s.on_span == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(s.periods, torch.tensor([5.0, 8.0, 12.0], dtype=s.periods.dtype), rtol=0.05, atol=0)
    assert s.to_dict()["max_coherence"] < 0.15


def test_gradients_reach_the_periods_and_movements():
    M = _model()
    ws = M(torch.randn(4, 12), 12, generator=torch.Generator().manual_seed(0))
    ws.square().sum().backward()
    assert M.osc_log_period.grad.abs().min() > 0 and M.osc_move.grad.abs().sum() > 0


def test_bank_step_energy_is_the_mean_square_step_and_leaves_the_periods_alone():
    M = _bank([3.0, 7.0, 19.0], torch.randn(3, 6, generator=torch.Generator().manual_seed(1)))
    phase = torch.rand(20000, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 * math.pi
    with torch.no_grad():  # the mean over phases of |o_{t+1} - o_t|^2, in stdev^2, at any t
        for t in (0, 5):
            step = (M.oscillation(t + 1, phase) - M.oscillation(t, phase)).double().square().sum(dim=1).mean()
            assert float(M.bank_step_energy()) == pytest.approx(float(step), rel=0.03)
    want = sum(
        2 * math.sin(math.pi / p) ** 2 * float(u.square().sum())
        for p, u in zip((3.0, 7.0, 19.0), M.osc_move.detach(), strict=True)
    )
    assert float(M.bank_step_energy().detach()) == pytest.approx(want, rel=1e-5)
    M.bank_step_energy().backward()
    assert M.osc_log_period.grad is None and M.osc_move.grad.abs().sum() > 0  # shrinks movements, never slows them
    assert float(MotionGenerator(MotionConfig(w_dim=12, noise_dim=10, h_dim=8, n_pca=6)).bank_step_energy()) == 0


def test_bank_spread_counts_directions_and_only_turns_movements():
    """0 when every oscillator moves one direction, 1 when each moves all n_pca alike, weighted
    by the oscillators' step energy; its gradient is orthogonal to each movement (it turns the
    movement, it does not shrink it) and never reaches the periods."""
    one_each = torch.zeros(2, 6)
    one_each[0, 1], one_each[1, 4] = 1.0, -3.0
    assert float(_bank([5.0, 8.0], one_each).bank_spread().detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(_bank([5.0, 8.0], torch.ones(2, 6)).bank_spread().detach()) == pytest.approx(1.0, rel=1e-6)
    mixed = torch.zeros(2, 6)
    mixed[0, :4] = 1.0  # four directions alike: (4 / 2 - 1) / (sqrt 6 - 1)
    mixed[1, 2] = 2.0  # one direction, twice as large, period 4 against 8
    e = [2 * math.sin(math.pi / p) ** 2 * n for p, n in ((8.0, 4.0), (4.0, 4.0))]
    want = e[0] / sum(e) * (4 / 2 - 1) / (math.sqrt(6) - 1)
    M = _bank([8.0, 4.0], mixed)
    assert float(M.bank_spread().detach()) == pytest.approx(want, rel=1e-6)
    M = _model()
    M.bank_spread().backward()
    radial = (M.osc_move.grad * M.osc_move.detach()).sum(dim=1)
    assert radial.abs().max() < 1e-6 and M.osc_move.grad.abs().max() > 1e-4
    assert M.osc_log_period.grad is None or float(M.osc_log_period.grad.abs().max()) == 0
    assert float(MotionGenerator(MotionConfig(w_dim=12, noise_dim=10, h_dim=8, n_pca=6)).bank_spread().detach()) == 0


def test_initial_periods_span_the_configured_range():
    M = MotionGenerator(
        MotionConfig(w_dim=12, noise_dim=16, h_dim=8, n_pca=6, oscillators=16, osc_min_period=3.0, osc_max_period=32.0)
    )
    p = M.osc_log_period.detach().exp()
    assert p[0] == pytest.approx(3.0) and p[-1] == pytest.approx(32.0) and (p[1:] / p[:-1]).std() < 1e-5
    assert 0.005 < M.osc_move.std() < 0.05  # small movements: training decides which oscillators move
    assert MotionGenerator(MotionConfig(w_dim=12, noise_dim=10, h_dim=8, n_pca=6)).bank() == []
    bank = _model().bank()
    assert len(bank) == 4 and sorted(p for p, _ in bank) == pytest.approx(
        _model().osc_log_period.detach().exp().tolist()
    )
    assert [z for _, z in bank] == sorted((z for _, z in bank), reverse=True)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"oscillators": 11}, "oscillators must be in 0..10"),  # phases come from the first noise vector
        ({"oscillators": -1}, "oscillators must be in 0..10"),
        ({"osc_min_period": 1.5}, "osc_min_period must be >= 2.0"),
        ({"osc_max_period": 2.5}, "osc_max_period must be >= 3.0"),
    ],
)
def test_bad_settings_are_one_line(change, message):
    with pytest.raises(UsageError, match=message):
        MotionConfig(**{**CFG.to_dict(), **change})


def test_files_round_trip_retarget_and_info(tmp_path, capsys):
    M = _model()
    path = tmp_path / "osc.safetensors"
    save_motion(path, M)
    M2 = load_motion(path)
    assert M2.cfg == M.cfg
    for k, v in M.state_dict().items():
        assert torch.equal(v, M2.state_dict()[k]), k
    assert CFG.state_shapes() == {k: tuple(v.shape) for k, v in M.state_dict().items()}
    w1 = torch.randn(2, 12)
    with torch.no_grad():  # retargeted: the same PCA coordinates along the other basis
        comps, stdev = _basis(seed=5)
        M3 = M.retarget(comps, stdev * 2)
        eps = torch.randn(2, 11, 10)
        a, b = M(w1, 12, eps=eps), M3(w1, 12, eps=eps)
    da = (a - w1[:, None]) @ M.pca_components.T / M.pca_stdev
    db = (b - w1[:, None]) @ M3.pca_components.T / M3.pca_stdev
    torch.testing.assert_close(da, db, rtol=1e-4, atol=1e-4)
    info = describe(path)
    assert len(info.oscillators) == 4 and info.oscillators[0][1] >= info.oscillators[-1][1]
    code, out, _ = run(capsys, "info", str(path))
    assert code == 0 and "oscillators" in out and "period in frames" in out
    # a file whose bank is missing a tensor is refused with one line, before building
    bad = tmp_path / "bad.safetensors"
    canonical.save_model(
        bad,
        {k: v for k, v in M.state_dict().items() if k != "osc_move"},
        kind="motion",
        family=FAMILY,
        config=M.cfg.to_dict(),
    )
    with pytest.raises(MocohdError, match="osc_move"):
        load_motion(bad)


# ---------------------------------------------------------------- training with the bank

from mocohd_cli.train import TrainConfig, train  # noqa: E402 - imported where the training tests begin

from . import test_train  # noqa: E402 - its fixtures and helpers

setup = test_train.setup  # the fixture: a tiny frozen generator (16 px, w 32) and 3 videos of a moving bar


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("domain", ["in", "cross"])
def test_training_with_oscillators_exports_the_bank_and_fine_tunes_it(setup, domain):
    r = train(test_train.tiny(setup, name=f"osc-{domain}", domain=domain, oscillators=4, monitor=False))
    M = load_motion(r.motion)
    assert M.cfg.oscillators == 4 and M.osc_move.shape == (4, M.cfg.n_pca)
    assert all(math.isfinite(v) for v in r.losses.values())
    init = MotionGenerator(M.cfg)
    assert not torch.equal(M.osc_move, init.osc_move)  # trained (a fresh model has other random movements)
    if domain == "in":  # fine-tuning keeps the model's bank, whatever the default
        r2 = train(test_train.tiny(setup, name="osc-tuned", steps=1, init="osc-in", monitor=False))
        assert load_motion(r2.motion).cfg.oscillators == 4


@pytest.mark.usefixtures("one_thread")
def test_the_default_is_the_authors_model_and_a_resume_keeps_the_bank(setup):
    assert TrainConfig().oscillators == 0
    train(test_train.tiny(setup, name="osc-resume", oscillators=4, monitor=False))
    with pytest.raises(UsageError, match="cannot change oscillators"):
        train(TrainConfig(name="osc-resume", steps=3, oscillators=8), resume=True)
    r2 = train(TrainConfig(name="osc-resume", steps=3), resume=True)
    assert load_motion(r2.motion).cfg.oscillators == 4 and r2.step == 3


@pytest.mark.usefixtures("one_thread")
def test_the_command_line_trains_a_bank_and_info_shows_it(setup, capsys):
    args = test_train._cli_args(setup, "osc-cli", 1, "--oscillators", "3", "--no-monitor")
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert load_motion("osc-cli").cfg.oscillators == 3
    code, out, _ = run(capsys, "info", "osc-cli", "--kind", "motion")
    assert code == 0 and "oscillators" in out and "3, largest" in out
    gpath, _ = setup
    out_dir = gpath.parent / "frames"
    code, out, err = run(
        capsys,
        "render",
        str(out_dir),
        "--motion",
        "osc-cli",
        "--image",
        str(gpath),
        "-n",
        "12",
        "--format",
        "png",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert len(list(out_dir.glob("*.png"))) == 12
    code, _, err = run(capsys, *test_train._cli_args(setup, "osc-bad", 1, "--oscillators", "8", "--noise-dim", "4"))
    assert code == 2 and err.count("\n") == 1 and "oscillators must be at most noise_dim" in err
    for prior in ("--w-bank-energy", "--w-bank-spread"):
        code, _, err = run(capsys, *test_train._cli_args(setup, "osc-none", 1, prior, "1"))  # no bank
        assert (
            code == 2 and err.count("\n") == 1 and "is a prior on the oscillator bank: it needs oscillators > 0" in err
        )
        assert prior in err


@pytest.mark.usefixtures("one_thread")
def test_fine_tuning_keeps_the_models_bank_and_its_priors_apply_to_it(setup, capsys):
    """Regression: `--init osc0 --oscillators 16 --w-bank-energy 1` trained without a bank (the prior did
    nothing), and `--init` of a bank model with --w-bank-energy was refused as needing oscillators."""
    train(test_train.tiny(setup, name="osc0", steps=1, monitor=False))
    train(test_train.tiny(setup, name="bank", steps=1, oscillators=4, monitor=False))
    code, _, err = run(
        capsys, *test_train._cli_args(setup, "t", 1, "--init", "osc0", "--oscillators", "16", "--w-bank-energy", "1")
    )
    assert code == 2 and err.count("\n") == 1 and "the init model 'osc0' has oscillators 0, not oscillators 16" in err
    code, _, err = run(capsys, *test_train._cli_args(setup, "t", 1, "--init", "osc0", "--w-bank-spread", "1"))
    assert code == 2 and err.count("\n") == 1
    assert (
        "w_bank_spread (--w-bank-spread) is a prior on the oscillator bank, and the init model 'osc0' has none" in err
    )
    code, out, err = run(
        capsys,
        *test_train._cli_args(
            setup, "t", 2, "--init", "bank", "--w-bank-energy", "1", "--no-monitor", "--log-every", "1"
        ),
    )
    assert code == 0, err
    assert load_motion("t").cfg.oscillators == 4
    lines = test_train._loss_records(test_train._runs("t") / "metrics.jsonl")
    assert len(lines) == 2 and all("bank_energy" in x for x in lines)  # the prior works on the model's bank
    # the library: the same (a prior without oscillators given waits for the init model's bank)
    r = train(test_train.tiny(setup, name="t2", steps=1, init="bank", w_bank_spread=1.0, monitor=False))
    assert "bank_spread" in r.losses and load_motion(r.motion).cfg.oscillators == 4
    with pytest.raises(UsageError, match="the init model 'bank' has oscillators 4, not oscillators 2"):
        train(test_train.tiny(setup, name="t3", init="bank", oscillators=2, w_bank_spread=1.0))


def test_training_settings_of_the_bank_are_checked():
    with pytest.raises(UsageError, match=r"oscillators must be at most noise_dim \(--noise-dim\)"):
        TrainConfig(oscillators=8, noise_dim=4)
    with pytest.raises(UsageError, match=r"w_residual \(--w-residual\) must be a finite number > 0"):
        TrainConfig(oscillators=0, w_residual=0.0)
    TrainConfig(oscillators=4, w_residual=0.0)  # the bank alone
    with pytest.raises(UsageError, match=r"oscillators must be a whole number >= 0"):
        TrainConfig(oscillators=-1)
    for prior in ("w_bank_energy", "w_bank_spread"):
        flag = "--" + prior.replace("_", "-")
        with pytest.raises(
            UsageError, match=rf"{prior} \({flag}\) is a prior on the oscillator bank: it needs oscillators > 0"
        ):
            TrainConfig(**{prior: 0.1})
        with pytest.raises(UsageError, match=rf"{prior} \({flag}\) must be a finite number >= 0"):
            TrainConfig(oscillators=4, **{prior: -1.0})
        assert getattr(TrainConfig(), prior) == 0.0


@pytest.mark.usefixtures("one_thread")
def test_training_with_the_bank_energy_prior_shrinks_idle_movements(setup):
    """A tiny in-domain run: the prior enters the motion loss (logged as bank_energy) and,
    at a large weight over a few steps, the bank ends smaller than without it."""
    sizes = {}
    for w in (0.0, 100.0):
        r = train(
            test_train.tiny(setup, name=f"bank-energy-{w:g}", steps=4, oscillators=4, w_bank_energy=w, monitor=False)
        )
        assert ("bank_energy" in r.losses) == bool(w) and all(math.isfinite(v) for v in r.losses.values())
        sizes[w] = float(load_motion(r.motion).osc_move.norm())
    assert sizes[100.0] < sizes[0.0]


@pytest.mark.usefixtures("one_thread")
def test_training_with_the_bank_spread_prior_turns_movements_toward_few_directions(setup):
    """A tiny in-domain run: the prior enters the motion loss (logged as bank_spread) and, at a
    large weight over a few steps, the bank ends on fewer directions than without it."""
    spread = {}
    for w in (0.0, 100.0):
        r = train(
            test_train.tiny(setup, name=f"bank-spread-{w:g}", steps=4, oscillators=4, w_bank_spread=w, monitor=False)
        )
        assert ("bank_spread" in r.losses) == bool(w) and all(math.isfinite(v) for v in r.losses.values())
        spread[w] = float(load_motion(r.motion).bank_spread().detach())
    assert spread[100.0] < spread[0.0]


# ---------------------------------------------------------------- the orthonormal bank

ORTHO = MotionConfig(**{**CFG.to_dict(), "osc_basis": "orthonormal"})


def _ortho_model(seed=0):
    torch.manual_seed(seed)
    comps, stdev = _basis(seed)
    M = MotionGenerator(ORTHO, comps, stdev)
    with torch.no_grad():
        M.osc_size.copy_(torch.tensor([0.5, -0.9, 1.3, 0.2]))
    return M


def test_an_orthonormal_bank_moves_orthogonal_directions_at_its_sizes():
    M = _ortho_model()
    u = M.movements().detach()
    # u_k = a_k q_k with orthonormal q_k: the Gram matrix is diag(a_k^2)
    torch.testing.assert_close(u @ u.T, torch.diag(M.osc_size.detach().square()), rtol=0, atol=1e-6)
    # q_k is Gram-Schmidt of the frame's rows: q_1 along row 1, q_2 in the span of rows 1 and 2
    f = M.osc_frame.detach()
    q = u / M.osc_size.detach()[:, None]
    torch.testing.assert_close(q[0], f[0] / f[0].norm(), rtol=0, atol=1e-6)
    resid = f[1] - (f[1] @ q[0]) * q[0]
    torch.testing.assert_close(q[1], resid / resid.norm(), rtol=0, atol=1e-6)
    # the sizes are what the bank reports, and a free copy moves exactly as the model
    assert sorted(z for _, z in M.bank()) == pytest.approx(sorted(abs(a) for a in [0.5, -0.9, 1.3, 0.2]))
    free = M.free_bank()
    assert free.cfg.osc_basis == "free" and M.cfg.osc_basis == "orthonormal"
    w1, eps = torch.randn(3, 12), torch.randn(3, 15, 10)
    with torch.no_grad():
        torch.testing.assert_close(M(w1, 16, eps=eps), free(w1, 16, eps=eps), rtol=0, atol=1e-5)
    assert free.free_bank() is free


def test_two_oscillators_of_an_orthonormal_bank_never_lock_two_directions():
    """Whatever the frame, two directions each moved by one oscillator at its own period measure
    independent: the case a free bank gets wrong when two oscillators move the same mixture."""
    M = _ortho_model()
    M.cfg.w_residual = 0.0  # the bank alone
    with torch.no_grad():
        M.osc_log_period.copy_(torch.tensor([5.0, 8.0, 12.0, 20.0]).log())
        M.osc_size.copy_(torch.tensor([1.0, 1.0, 0.0, 0.0]))
        g = torch.Generator().manual_seed(1)
        ws = M(torch.randn(512, 12, generator=g), 32, generator=g)
    q = M.movements().detach()[:2]
    s = motion_stats(ws, q @ (M.pca_components / M.pca_stdev[:, None]))
    assert float(s.coherence[0, 1]) < 0.1  # independent phases (512 videos: noise ~ 0.05)
    torch.testing.assert_close(s.periods.float(), torch.tensor([5.0, 8.0]), rtol=0.05, atol=0)


def test_gradients_reach_the_orthonormal_banks_frame_sizes_and_periods():
    M = _ortho_model()
    M(torch.randn(2, 12), 9).square().sum().backward()
    for p in (M.osc_frame, M.osc_size, M.osc_log_period):
        assert p.grad is not None and bool(p.grad.isfinite().all()) and float(p.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"osc_basis": "sparse"}, "osc_basis must be one of free, orthonormal, got 'sparse'"),
        ({"osc_basis": "orthonormal", "n_pca": 3}, r"oscillators \(4\) must be at most n_pca \(3\)"),
    ],
)
def test_bad_orthonormal_settings_are_one_line(change, message):
    with pytest.raises(UsageError, match=message):
        MotionConfig(**{**CFG.to_dict(), **change})


def test_orthonormal_files_round_trip_and_older_files_read_as_free(tmp_path):
    M = _ortho_model()
    path = tmp_path / "ortho.safetensors"
    save_motion(path, M)
    M2 = load_motion(path)
    assert M2.cfg == M.cfg and ORTHO.state_shapes() == {k: tuple(v.shape) for k, v in M.state_dict().items()}
    for k, v in M.state_dict().items():
        assert torch.equal(v, M2.state_dict()[k]), k
    assert [z for _, z in describe(path).oscillators] == pytest.approx([1.3, 0.9, 0.5, 0.2], abs=1e-6)
    old = _model()
    config = {k: v for k, v in old.cfg.to_dict().items() if k != "osc_basis"}  # a file from before the setting
    canonical.save_model(tmp_path / "old.safetensors", old.state_dict(), kind="motion", family=FAMILY, config=config)
    assert load_motion(tmp_path / "old.safetensors").cfg.osc_basis == "free"


@pytest.mark.usefixtures("one_thread")
def test_training_an_orthonormal_bank_exports_it_and_a_resume_or_fine_tune_keeps_it(setup, capsys):
    r = train(test_train.tiny(setup, name="ortho", oscillators=4, osc_basis="orthonormal", monitor=False))
    M = load_motion(r.motion)
    assert M.cfg.osc_basis == "orthonormal" and M.osc_frame.shape == (4, M.cfg.n_pca)
    q = M.movements().detach() / M.osc_size.detach()[:, None]
    torch.testing.assert_close(q @ q.T, torch.eye(4), rtol=0, atol=1e-5)
    assert not torch.equal(M.osc_frame, MotionGenerator(M.cfg).osc_frame)  # trained
    with pytest.raises(UsageError, match="cannot change osc_basis"):
        train(TrainConfig(name="ortho", steps=3, osc_basis="free"), resume=True)
    assert load_motion(train(TrainConfig(name="ortho", steps=3), resume=True).motion).cfg.osc_basis == "orthonormal"
    tuned = train(test_train.tiny(setup, name="ortho-tuned", steps=1, init="ortho", monitor=False))
    assert load_motion(tuned.motion).cfg.osc_basis == "orthonormal"
    code, _, err = run(capsys, *test_train._cli_args(setup, "o", 1, "--init", "ortho", "--osc-basis", "free"))
    assert code == 2 and err.count("\n") == 1 and "has osc_basis orthonormal, not osc_basis (--osc-basis) free" in err
    code, _, err = run(capsys, *test_train._cli_args(setup, "o", 1, "--osc-basis", "orthonormal"))
    assert code == 2 and err.count("\n") == 1 and "osc_basis (--osc-basis) is the oscillator bank's" in err
    code, _, err = run(
        capsys, *test_train._cli_args(setup, "o", 1, "--osc-basis", "orthonormal", "--oscillators", "9", "--n-pca", "8")
    )
    assert code == 2 and err.count("\n") == 1 and "oscillators must be at most n_pca" in err
