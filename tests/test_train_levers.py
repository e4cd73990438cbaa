"""The motion-training ablation levers at tiny sizes: D_V's minibatch-stddev channel
(``dv_mbstd``, ``patchgan.minibatch_stddev``) and the size of the motion noise
(``noise_dim``): their arithmetic, the shapes they build, short runs with them,
the exported model and the settings' checks."""

import json
import math
import os
from pathlib import Path

import pytest
import torch

from mocohd_cli import load_motion
from mocohd_cli.discriminators.patchgan import MultiscaleVideoDiscriminator, minibatch_stddev
from mocohd_cli.errors import UsageError
from mocohd_cli.train import TrainConfig, load_checkpoint, train

from . import test_train

pytestmark = pytest.mark.usefixtures("one_thread")

setup = test_train.setup  # the fixture: a tiny frozen generator (16 px, w 32) and 3 videos of a moving bar
tiny = test_train.tiny
W_DIM = 32  # tiny_config's w size


# ---------------------------------------------------------------- minibatch_stddev


def _reference(x: torch.Tensor, g: int) -> torch.Tensor:
    """The extra channel's value for each sample, computed sample by sample: the members of
    sample i's group are i mod B/g, i mod B/g + B/g, ... (g of them); per feature the population
    std over them (with 1e-8 under the root), averaged over channels and positions."""
    b = x.shape[0]
    n = b // g
    out = []
    for i in range(b):
        members = torch.stack([x[j].double() for j in range(b) if j % n == i % n])
        assert len(members) == g
        std = (members.var(dim=0, unbiased=False) + 1e-8).sqrt()
        out.append(std.mean())
    return torch.stack(out)


@pytest.mark.parametrize("shape", [(8, 3, 5, 6), (6, 4, 3, 5, 5)], ids=["4d", "5d"])
@pytest.mark.parametrize("group", [1, 2, 4])
def test_minibatch_stddev_adds_the_group_std_channel(shape, group):
    torch.manual_seed(0)
    x = torch.randn(shape) * torch.linspace(0.5, 2, shape[0]).view(-1, *[1] * (len(shape) - 1))
    y = minibatch_stddev(x, group)
    assert y.shape == (shape[0], shape[1] + 1, *shape[2:]) and y.dtype == x.dtype
    assert torch.equal(y[:, :-1], x)  # the features pass unchanged
    extra = y[:, -1]
    # one value per sample, the same at every position
    assert torch.equal(extra, extra.flatten(1)[:, :1].reshape(-1, *[1] * (extra.ndim - 1)).expand_as(extra))
    g = max(d for d in range(1, group + 1) if shape[0] % d == 0)
    torch.testing.assert_close(extra.flatten(1)[:, 0].double(), _reference(x, g), rtol=1e-5, atol=1e-6)


def test_minibatch_stddev_groups_are_strided_not_contiguous():
    """B=4, group 2: samples (0, 2) and (1, 3) form the groups, as StyleGAN's layer."""
    x = torch.zeros(4, 1, 2, 2)
    x[0] = 1.0  # group (0, 2) spreads by 1 per feature (std 0.5); group (1, 3) not at all
    v = minibatch_stddev(x, 2)[:, -1, 0, 0]
    torch.testing.assert_close(v, torch.tensor([0.5, 1e-4, 0.5, 1e-4]), rtol=1e-4, atol=1e-7)


def test_minibatch_stddev_of_identical_samples_is_the_epsilon():
    x = torch.randn(1, 3, 4, 4).expand(4, 3, 4, 4).contiguous()
    extra = minibatch_stddev(x, 4)[:, -1]
    torch.testing.assert_close(extra, torch.full_like(extra, math.sqrt(1e-8)), rtol=1e-3, atol=1e-9)


@pytest.mark.parametrize("batch,group,effective", [(6, 4, 3), (5, 4, 1), (7, 3, 1), (2, 4, 2), (9, 4, 3), (3, 8, 3)])
def test_minibatch_stddev_shrinks_the_group_to_divide_the_batch(batch, group, effective):
    torch.manual_seed(1)
    x = torch.randn(batch, 2, 3, 3)
    extra = minibatch_stddev(x, group)[:, -1, 0, 0]
    torch.testing.assert_close(extra.double(), _reference(x, effective), rtol=1e-5, atol=1e-6)
    if effective == 1:  # every sample alone: no spread
        torch.testing.assert_close(extra, torch.full_like(extra, 1e-4), rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("dims", [4, 5])
def test_minibatch_stddev_passes_gradients(dims):
    torch.manual_seed(2)
    x = torch.randn(4, 3, *[4] * (dims - 2), requires_grad=True)
    minibatch_stddev(x, 2)[:, -1].sum().backward()  # through the std channel alone
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # of identical samples (the std at its epsilon) the gradient stays finite
    z = torch.ones(4, 3, *[4] * (dims - 2), requires_grad=True)
    minibatch_stddev(z, 4).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_minibatch_stddev_keeps_a_low_precision_dtype():
    x = torch.randn(4, 2, 3, 3).to(torch.bfloat16)
    y = minibatch_stddev(x, 2)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y[:, -1, 0, 0].double(), _reference(x.float(), 2), rtol=1e-2, atol=1e-3)


# ---------------------------------------------------------------- D_V with the channel


def test_video_discriminator_with_mbstd_keeps_its_output_shapes():
    torch.manual_seed(3)
    plain = MultiscaleVideoDiscriminator(3, 4, base_channels=4).eval()
    mbstd = MultiscaleVideoDiscriminator(3, 4, base_channels=4, mbstd_group=2).eval()
    x = torch.randn(4, 3, 4, 16, 16)
    with torch.no_grad():
        a, b = plain(x), mbstd(x)
    assert [[f.shape for f in s] for s in a] == [[f.shape for f in s] for s in b]
    assert len(b) == 2 and all(torch.isfinite(s[-1]).all() and s[-1].shape[:2] == (4, 1) for s in b)
    # one more input channel on each scale's first stride-1 conv, nothing else changes
    pa, pb = plain.state_dict(), mbstd.state_dict()
    assert pa.keys() == pb.keys()
    grown = {k for k in pa if pa[k].shape != pb[k].shape}
    assert grown == {"scales.0.layers.3.0.weight", "scales.1.layers.3.0.weight"}
    assert all(pb[k].shape[1] == pa[k].shape[1] + 1 for k in grown)


def test_video_discriminator_with_mbstd_sees_the_rest_of_its_group():
    """Without the channel a clip's scores depend on that clip alone; with group 2 of a batch
    of 4 they depend on the other member of its group (0 with 2), not on the other group."""
    torch.manual_seed(4)
    x = torch.randn(4, 3, 4, 16, 16)
    other_group, same_group = x.clone(), x.clone()
    other_group[1] += 1.0
    same_group[2] += 1.0
    for group, depends in ((0, False), (2, True)):
        D = MultiscaleVideoDiscriminator(3, 4, base_channels=4, mbstd_group=group).eval()
        with torch.no_grad():
            s, s_other, s_same = (D(v)[0][-1][0] for v in (x, other_group, same_group))
        assert torch.equal(s, s_other)
        assert torch.equal(s, s_same) != depends


@pytest.mark.parametrize("domain", ["in", "cross"])
def test_training_with_dv_mbstd_runs(setup, domain):
    r = train(tiny(setup, name=f"mbstd-{domain}", domain=domain, steps=1, dv_mbstd=2, monitor=False))
    assert r.step == 1 and r.losses and all(math.isfinite(v) for v in r.losses.values())
    ck = load_checkpoint(r.run / "checkpoint.pt")
    dv = ck["gan"]["D_V"]
    plain = MultiscaleVideoDiscriminator(3 * (2 if domain == "in" else 1), 4 - (domain == "in"), base_channels=4)
    for s in (0, 1):  # the stored D_V has the extra channel
        key = f"scales.{s}.layers.3.0.weight"
        assert dv[key].shape[1] == plain.state_dict()[key].shape[1] + 1
    assert all(torch.isfinite(t).all() for t in dv.values() if t.is_floating_point())
    assert json.loads((r.run / "config.json").read_text())["dv_mbstd"] == 2


# ---------------------------------------------------------------- noise_dim


def test_noise_dim_sizes_the_motion_noise(setup):
    cfg = tiny(setup, name="eps3", steps=1, noise_dim=3)
    r = train(cfg)
    M = load_motion(r.motion)
    assert M.cfg.noise_dim == 3 and M.cfg.w_dim == W_DIM
    sd = M.state_dict()
    assert sd["cell.weight_ih"].shape == (4 * 16, 3) and sd["fc2.weight"].shape == (3, 3)
    assert sd["enc_cell.weight_ih"].shape[1] == W_DIM  # the encoder still reads w
    assert all(math.isfinite(v) for v in r.losses.values())
    assert json.loads((r.run / "config.json").read_text())["noise_dim"] == 3

    # fine-tuning that model keeps its noise size (the default would be the w size)
    r2 = train(tiny(setup, name="eps3-tuned", steps=1, init="eps3"))
    tuned = load_motion(r2.motion)
    assert tuned.cfg.noise_dim == 3 and tuned.state_dict()["cell.weight_ih"].shape[1] == 3
    assert json.loads((r2.run / "config.json").read_text())["noise_dim"] == 3


def test_noise_dim_defaults_to_the_generators_w_size(setup):
    cfg = tiny(setup, name="eps-default", steps=1, monitor=False)
    assert cfg.noise_dim is None
    r = train(cfg)
    assert r.config.noise_dim == W_DIM and cfg.noise_dim is None  # resolved by the trainer, in the run's settings
    M = load_motion(r.motion)
    assert M.cfg.noise_dim == W_DIM and M.state_dict()["cell.weight_ih"].shape[1] == W_DIM
    assert json.loads((r.run / "config.json").read_text())["noise_dim"] == W_DIM


@pytest.mark.parametrize(
    "bad,value",
    [("noise_dim", 0), ("noise_dim", -3), ("noise_dim", 2.5), ("noise_dim", True), ("dv_mbstd", -1), ("dv_mbstd", 1.5)],
)
def test_lever_settings_are_checked(bad, value):
    with pytest.raises(UsageError) as e:
        TrainConfig(**{bad: value})
    text = str(e.value)
    flag = bad.replace("_", "-")
    least = 1 if bad == "noise_dim" else 0
    assert len(text.splitlines()) == 1
    assert text == f"{bad} (--{flag}) must be a whole number >= {least}, got {value!r}"


def test_lever_defaults_are_the_official_recipe():
    cfg = TrainConfig()
    assert cfg.noise_dim is None and cfg.dv_mbstd == 0
    TrainConfig(noise_dim=1, dv_mbstd=0)  # the least values pass
    TrainConfig(noise_dim=None, dv_mbstd=8)


# ---------------------------------------------------------------- cross-spectrum matching


@pytest.mark.parametrize("domain", ["in", "cross"])
def test_training_with_cross_spectrum_matching_runs(setup, domain):
    r = train(
        tiny(setup, name=f"xspec-{domain}", domain=domain, steps=1, w_cross_spectrum=0.5, w_spectrum=0.2, monitor=False)
    )
    assert r.step == 1 and "cross_spectrum" in r.losses and "spectrum" in r.losses
    assert all(math.isfinite(v) for v in r.losses.values())
    assert json.loads((r.run / "config.json").read_text())["w_cross_spectrum"] == 0.5
    off = train(tiny(setup, name=f"plain-{domain}", domain=domain, steps=1, monitor=False))
    assert not {"cross_spectrum", "spectrum"} & off.losses.keys()  # off by default, as the authors' recipe


def test_cross_spectrum_weight_is_checked():
    assert TrainConfig().w_cross_spectrum == 0.0
    with pytest.raises(UsageError) as e:
        TrainConfig(w_cross_spectrum=-1.0)
    assert len(str(e.value).splitlines()) == 1 and "w_cross_spectrum (--w-cross-spectrum)" in str(e.value)


# ---------------------------------------------------------------- the exported moving average (motion_ema)


def test_moving_average_follows_its_half_life():
    """The first update copies the model; later ones move each weight by 1 - 0.5 ** (1 / h), with h
    the half-life or half the steps taken before, whichever is smaller; buffers are copied."""
    from mocohd_cli.train.motion_gan import MovingAverage

    model = torch.nn.BatchNorm1d(2)  # a weight, a bias and buffers
    avg = MovingAverage(model, half_life=2.0)
    with torch.no_grad():
        model.weight.fill_(4.0)
        model.running_mean.fill_(7.0)
    avg.update(model)  # step 1: copied
    assert torch.equal(avg.model.weight, model.weight) and torch.equal(avg.model.running_mean, model.running_mean)
    expected = 4.0
    for taken, value in ((1, 0.0), (2, 8.0), (3, -2.0), (4, 1.0)):
        with torch.no_grad():
            model.weight.fill_(value)
            model.running_mean.fill_(value + 1)
        avg.update(model)
        keep = 0.5 ** (1 / min(2.0, 0.5 * taken))  # steps 2, 3: the ramp; from step 4 on the half-life
        expected = keep * expected + (1 - keep) * value
        torch.testing.assert_close(avg.model.weight, torch.full((2,), expected), rtol=1e-6, atol=1e-6)
        assert torch.equal(avg.model.running_mean, torch.full((2,), value + 1.0))
    assert avg.steps == 5 and not avg.model.weight.requires_grad and not avg.model.training


def test_motion_ema_exports_the_average_and_resumes_exactly(setup):
    def state(name, part):
        ck = load_checkpoint(Path(os.environ["MOCOHD_HOME"]) / "runs" / name / "checkpoint.pt")
        return ck["gan"][part]

    train(tiny(setup, name="ema-straight", steps=4, save_every=2, motion_ema=2.0))  # the monitor measures it
    train(tiny(setup, name="ema-halves", steps=2, save_every=2, motion_ema=2.0, monitor=False))
    r = train(tiny(setup, name="ema-halves", steps=4, save_every=2, motion_ema=2.0, monitor=False), resume=True)
    a, b = state("ema-straight", "M_ema"), state("ema-halves", "M_ema")
    assert a.pop("_extra_state") == b.pop("_extra_state") == {"steps": 4}  # the steps it has averaged
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the average resumes exactly
    exported = load_motion(r.motion).state_dict()
    averaged = {k.removeprefix("model."): v for k, v in a.items() if k.startswith("model.")}
    trained = state("ema-halves", "M")
    assert exported.keys() == averaged.keys() == trained.keys()
    assert all(torch.equal(exported[k], averaged[k]) for k in exported)  # the store holds the average
    assert any(not torch.equal(averaged[k], trained[k]) for k in trained)  # which is not the model trained
    assert json.loads((r.run / "config.json").read_text())["motion_ema"] == 2.0
    plain = train(tiny(setup, name="ema-off", steps=1, monitor=False))
    assert "M_ema" not in load_checkpoint(plain.run / "checkpoint.pt")["gan"]  # off by default


def test_motion_ema_is_checked():
    assert TrainConfig().motion_ema == 0.0
    with pytest.raises(UsageError) as e:
        TrainConfig(motion_ema=-1.0)
    assert len(str(e.value).splitlines()) == 1 and "motion_ema (--motion-ema)" in str(e.value)
