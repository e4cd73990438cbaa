"""Encoder training (train/encoder_trainer.py) at tiny sizes: it trains and exports an encoder
tied to its generator, resumes exactly, learns from real frames too, and refuses what cannot
work in one line."""

import dataclasses
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from mocohd_cli.data.procedural import write_dataset
from mocohd_cli.data.trajectories import encode_dataset
from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.formats import canonical
from mocohd_cli.loaders import load_encoder, load_image_generator
from mocohd_cli.loaders.latents import load_latent
from mocohd_cli.loaders.motion_models import load_motion
from mocohd_cli.motion.stats import rhythms
from mocohd_cli.train import TrainConfig, load_checkpoint, train
from mocohd_cli.train.encoder_trainer import EncoderTrainConfig, train_encoder

from .conftest import randomized_generator, run, save_canonical, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny training steps (tests/conftest.py)


@pytest.fixture
def tiny_g(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_canonical(path, randomized_generator(tiny_config(16)))
    return path


def tiny(image, **kw):
    base = dict(
        image=str(image),
        steps=2,
        batch=4,
        real_batch=2,
        workers=0,
        save_every=1000,
        sample_every=1000,
        log_every=1,
        device="cpu",
    )
    base.update(kw)
    return EncoderTrainConfig(**base)


def _ckpt(name):
    return load_checkpoint(Path(os.environ["MOCOHD_HOME"]) / "runs" / f"{name}-encoder" / "checkpoint.pt")


def test_a_few_steps_train_and_export_an_encoder_of_that_generator(tiny_g):
    cfg = tiny(tiny_g, steps=3, sample_every=3, space="w")
    given = dataclasses.asdict(cfg)
    r = train_encoder(cfg)
    assert dataclasses.asdict(cfg) == given  # the caller's config is left as it was
    assert r.config.name == "tiny" and r.config.resolution == 16 and r.step == 3
    assert r.encoder.is_file() and (r.run / "samples" / "step_0000003.png").is_file()
    G = load_image_generator(tiny_g)
    E = load_encoder("tiny", G)
    assert E.cfg.space == "w" and E.image["image_sha256"] == G.identity["weights_sha256"]
    assert torch.equal(E.state_dict()["fc1.weight"], _ckpt("tiny")["encoder"]["E"]["fc1.weight"])
    assert set(r.losses) >= {"loss", "latent", "pixel"}


def test_a_stopped_run_resumes_exactly(tiny_g):
    train_encoder(tiny(tiny_g, name="halves", steps=2))
    train_encoder(tiny(tiny_g, name="halves", steps=4), resume=True)
    train_encoder(tiny(tiny_g, name="straight", steps=4, save_every=2))
    a, b = _ckpt("halves"), _ckpt("straight")
    assert a["step"] == b["step"] == 4
    for k, v in a["encoder"]["E"].items():
        assert torch.equal(v, b["encoder"]["E"][k]), k


def test_real_frames_add_reconstruction_terms(tiny_g, tmp_path):
    data = write_dataset(tmp_path / "heads", videos=2, frames=3, size=24, seed=0)
    r = train_encoder(tiny(tiny_g, data=str(data), name="with-data"))
    assert {"real_pixel"} <= set(r.losses) and r.config.data == str(data)
    assert canonical.read_header(r.encoder).source["data"] == "heads"


def test_what_cannot_work_is_refused(tiny_g, tmp_path):
    with pytest.raises(UsageError, match="image is required for a new encoder run"):
        train_encoder(EncoderTrainConfig(name="x", device="cpu"))
    with pytest.raises(MocohdError, match="resolution 32 is above the generator's 16 px"):
        train_encoder(tiny(tiny_g, resolution=32))
    with pytest.raises(UsageError, match="power of two"):
        tiny(tiny_g, resolution=24)
    with pytest.raises(UsageError, match=r"space must be w or w\+"):
        tiny(tiny_g, space="z")
    train_encoder(tiny(tiny_g, name="once", steps=1))
    with pytest.raises(MocohdError, match="already"):
        train_encoder(tiny(tiny_g, name="once", steps=1))


# ---------------------------------------------------------------------------------- commands


def test_the_commands_train_show_and_use_an_encoder(tiny_g, tmp_path, capsys):
    code, out, err = run(capsys, "train-encoder", "--image", str(tiny_g), "--steps", "2", "--batch", "4",
                         "--workers", "0", "--device", "cpu", "--log-every", "1")  # fmt: skip
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("finished at step 2/2; encoder tiny -> ")
    assert lines[1] == f"next: mocohd invert PHOTO --image {tiny_g} --encoder tiny; " \
        "mocohd prepare --data DIR --encode tiny"  # fmt: skip
    code, out, _ = run(capsys, "info", "tiny")
    assert code == 0 and "trained for     tiny (weights" in out
    assert "6 w's of size 32 (space w+) of a 16 px image" in out

    photo = tmp_path / "face.png"
    Image.fromarray((torch.rand(16, 16, 3) * 255).byte().numpy()).save(photo)
    code, out, err = run(capsys, "invert", str(photo), "--image", str(tiny_g), "--encoder", "tiny",
                         "--steps", "0", "--loss", "pixel", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert "best after 0 of 0 steps" in out and load_latent("face").info["encoder"] == "tiny"

    other = tmp_path / "other.safetensors"
    save_canonical(other, randomized_generator(tiny_config(16), seed=5))
    code, out, err = run(capsys, "invert", str(photo), "--image", str(other), "--encoder", "tiny",
                         "--steps", "0", "--loss", "pixel", "--device", "cpu", "--name", "x")  # fmt: skip
    assert code == 1 and "was trained for 'tiny'" in err and len(err.strip().splitlines()) == 1

    data = write_dataset(tmp_path / "heads", videos=2, frames=3, size=24, seed=0)
    code, out, err = run(capsys, "prepare", "--data", str(data), "--frame-size", "16", "--frames", "2",
                         "--encode", "tiny", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert "latent trajectories: 2 videos encoded: 2 videos, 6 frames encoded by tiny (space w+)" in out
    code, out, err = run(capsys, "prepare", "--data", str(data), "--encode", "no-such-encoder")
    assert code == 1 and "no-such-encoder" in err


def test_train_against_the_trajectories_of_an_encoder(tiny_g, tmp_path):
    train_encoder(tiny(tiny_g, steps=1))
    data = write_dataset(tmp_path / "heads", videos=3, frames=6, size=24, seed=0)
    base = dict(data=str(data), image=str(tiny_g), encoder="tiny", steps=2, batch=2, frames=4,
                time_step=1, h_dim=16, n_pca=8, dv_channels=4, di_channels=4, proj_dim=8, queue=8, workers=0,
                pca_samples=1000, sample_every=1000, log_every=1, device="cpu", domain="in")  # fmt: skip
    events = []
    r = train(TrainConfig(name="both", **base), on_event=lambda kind, info: events.append((kind, info)))
    assert r.config.motion_d == "both" and {"G_latent", "D_latent_real"} <= set(r.losses)
    notes = [i["text"] for k, i in events if k == "note"]
    assert any(n.startswith("motion judged by the pixel discriminators and the latent") for n in notes), notes
    assert any(n == "latent trajectories: 3 videos encoded" for n in notes), notes
    r = train(TrainConfig(name="latent", motion_d="latent", calibrate_encoder=9, w_latent_cross_spectrum=1.0, **base))
    assert r.config.motion_d == "latent" and "G_video" not in r.losses and "G_latent" in r.losses
    assert "latent_cross_spectrum" in r.losses and r.config.calibrate_encoder == 9
    assert "D_L" in load_checkpoint(r.run / "checkpoint.pt")["gan"]
    # with a pool, the pool is state: two steps straight equal one step, a resume and another
    pooled = dict(base, motion_d="latent", w_latent_cross_spectrum=1.0, latent_pool=4, save_every=1)
    straight = train(TrainConfig(name="straight", **pooled))
    train(TrainConfig(name="halves", **{**pooled, "steps": 1}))
    halves = train(TrainConfig(name="halves", **pooled), resume=True)
    a, b = (load_checkpoint(x.run / "checkpoint.pt")["gan"] for x in (straight, halves))
    assert int(a["pool"]["added"]) == 4 and torch.equal(a["pool"]["coords"], b["pool"]["coords"])
    assert all(torch.equal(a["M"][k], b["M"][k]) for k in a["M"])

    # a bank fitted to the real trajectories: its first state is what stats.rhythms finds in them
    banked = dict(base, oscillators=4, osc_basis="orthonormal", osc_init="data", steps=1)
    events.clear()
    r = train(
        TrainConfig(name="fitted", osc_fixed_directions=True, **banked), on_event=lambda k, i: events.append((k, i))
    )
    assert any(i["text"].startswith("oscillator bank fitted to 3 real clips'") for k, i in events if k == "note")
    fitted = load_motion(r.motion)
    fresh = train(TrainConfig(name="fitted-only", **{**banked, "steps": 1, "lr": 1e-12}))
    start = load_motion(fresh.motion)  # one step at a learning rate too small to move anything
    cache = encode_dataset(data, load_encoder("tiny", load_image_generator(tiny_g)))
    ws = torch.stack([cache.whole(sig)[:4].float().mean(dim=1) for sig in cache.videos])  # each video's first clip
    coords = (ws - ws[:, :1]) @ start.pca_components.T / start.pca_stdev
    want = rhythms(coords.double(), 4)
    torch.testing.assert_close(
        start.osc_log_period.double(), (1 / want.frequencies).clamp(min=2).log(), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(start.osc_frame.double().abs(), want.directions.abs(), rtol=0, atol=1e-4)
    assert torch.equal(fitted.osc_frame, start.osc_frame)  # fixed directions: the frame did not train
    with pytest.raises(UsageError, match=r"osc_init \(--osc-init\) data fits a new oscillator bank"):
        TrainConfig(**{**banked, "encoder": None})
    with pytest.raises(UsageError, match="keeps the directions of an orthonormal bank"):
        TrainConfig(**{**base, "oscillators": 4, "osc_fixed_directions": True})

    with pytest.raises(UsageError, match="needs the generator's encoder"):
        TrainConfig(motion_d="latent", data=str(data), image=str(tiny_g))
    other = tmp_path / "other.safetensors"
    save_canonical(other, randomized_generator(tiny_config(16), seed=5))
    with pytest.raises(MocohdError, match="was trained for 'tiny'"):
        train(TrainConfig(name="wrong", **{**base, "image": str(other)}))


def test_the_step_term_compares_the_answered_step_of_two_nearby_frames_with_the_true_one(tiny_g):
    """With ``w_steps``, each sample gets a partner at w + step_size (w2 - w) rendered with the same
    noise; the term is the squared error of E(partner) - E(sample) against that step, relative to
    step_size^2 times one dimension's variance: recomputed here by hand from the same draws."""
    from mocohd_cli.encoders import EncoderConfig, ImageEncoder
    from mocohd_cli.train.encoder_recipe import EncoderRecipe

    G = load_image_generator(tiny_g)
    torch.manual_seed(0)
    cfg = EncoderConfig(resolution=16, w_dim=G.w_dim, num_ws=G.num_ws, space="w", channel_max=16, hidden=32)
    E = ImageEncoder(cfg, w_avg=G.mapping.w_avg).eval()

    def recipe(**kw):
        return EncoderRecipe(E, G, rng=torch.Generator().manual_seed(3), w_std=2.0, w_pixel=0.0, **kw)

    assert "steps" not in recipe().terms(4)  # weight 0: not computed
    r = recipe(w_steps=1.0, step_size=0.25)
    terms = r.terms(4)
    g = torch.Generator().manual_seed(3)  # the same draws, in the same order
    with torch.no_grad():
        w = G.mapping(torch.randn(4, G.z_dim, generator=g))
        noise = G.synthesis.make_noise(4, generator=g)
        x = G.synthesis(w, noise=noise)
        step = 0.25 * (G.mapping(torch.randn(4, G.z_dim, generator=g)) - w)
        x2 = G.synthesis(w + step, noise=noise)
        answered = E(x2) - E(x)
    expected = (answered - step[:, None]).square().mean() / (0.25**2 * 4.0 / G.w_dim)
    assert torch.allclose(terms["steps"].detach(), expected, rtol=1e-5)
    with pytest.raises(UsageError, match="step_size"):
        tiny(tiny_g, step_size=0)
