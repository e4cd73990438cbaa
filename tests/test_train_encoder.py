"""Encoder training (train/encoder_trainer.py) at tiny sizes: it trains and exports an encoder
tied to its generator, resumes exactly, learns from real frames too, and refuses what cannot
work in one line."""

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from mocohd_cli.data.procedural import write_dataset
from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.formats import canonical
from mocohd_cli.loaders import load_encoder, load_image_generator
from mocohd_cli.train import load_checkpoint
from mocohd_cli.train.encoder_trainer import EncoderTrainConfig, train_encoder

from .conftest import randomized_generator, save_canonical, tiny_config


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
    assert r.config.name == "tiny-encoder" and r.config.resolution == 16 and r.step == 3
    assert r.encoder.is_file() and (r.run / "samples" / "step_0000003.png").is_file()
    G = load_image_generator(tiny_g)
    E = load_encoder("tiny-encoder", G)
    assert E.cfg.space == "w" and E.image["image_sha256"] == G.identity["weights_sha256"]
    assert torch.equal(E.state_dict()["fc1.weight"], _ckpt("tiny-encoder")["encoder"]["E"]["fc1.weight"])
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
