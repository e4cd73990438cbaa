"""`mocohd train-image` at tiny sizes: it learns, resumes exactly, runs under
torchrun, and its generator is a store model that the rest of mocohd uses."""

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mocohd_cli import MocohdError, load_image_generator
from mocohd_cli.data.procedural import write_dataset
from mocohd_cli.errors import UsageError
from mocohd_cli.train import load_checkpoint
from mocohd_cli.train.image_trainer import ImageTrainConfig, train_image

from .conftest import run

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny training steps (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def heads(tmp_path):
    return write_dataset(tmp_path / "heads", videos=3, frames=4, size=32, seed=0)


def tiny(data, **kw):
    base = dict(
        data=str(data),
        resolution=16,
        steps=2,
        batch=4,
        channel_base=256,
        channel_max=16,
        mapping_layers=2,
        w_dim=16,
        workers=0,
        save_every=1000,
        sample_every=1000,
        log_every=1,
        device="cpu",
    )
    base.update(kw)
    return ImageTrainConfig(**base)


def _ckpt(name):
    return load_checkpoint(Path(os.environ["MOCOHD_HOME"]) / "runs" / f"{name}-image" / "checkpoint.pt")


def test_a_few_steps_train_and_export_a_generator(heads):
    r = train_image(tiny(heads, name="g", steps=3, sample_every=3))
    assert r.step == 3 and r.image.is_file() and (r.run / "samples" / "step_0000003.png").is_file()
    ck = _ckpt("g")
    torch.manual_seed(0)
    from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

    G0 = StyleGAN2Generator(
        StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)
    )
    moved = [k for k, p in G0.named_parameters() if not torch.equal(p.detach(), ck["G"][k])]
    assert len(moved) > 10
    assert not torch.equal(ck["G"]["mapping.w_avg"], G0.mapping.w_avg)  # the tracked average w moves
    G = load_image_generator("g")  # the exported EMA generator, usable by pca / train / render
    assert G.resolution == 16 and G.source["format"] == "mocohd-train-image"
    for k, v in G.state_dict().items():
        torch.testing.assert_close(v, ck["G_ema"][k])


def test_resume_is_exact(heads):
    train_image(tiny(heads, name="straight", steps=4, save_every=2))
    train_image(tiny(heads, name="halves", steps=2))
    train_image(tiny(heads, name="halves", steps=4), resume=True)
    a, b = _ckpt("straight"), _ckpt("halves")
    for part in ("G", "G_ema", "D"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert a["step"] == b["step"] == 4


def test_errors(heads):
    with pytest.raises(MocohdError, match="data and resolution are required for a new image run"):
        train_image(ImageTrainConfig(data=str(heads), device="cpu"))
    with pytest.raises(MocohdError, match="power of two"):
        train_image(tiny(heads, name="bad", resolution=24))
    train_image(tiny(heads, name="once", steps=1))
    with pytest.raises(MocohdError, match="already exists"):
        train_image(tiny(heads, name="once", steps=1))


def test_train_image_leaves_the_config_it_was_given_unchanged(heads, monkeypatch):
    """The run settles its name and data folder in its own copy (the result's config, which
    config.json records); the caller's config stays as it was, a resume's too."""
    monkeypatch.chdir(heads.parent)
    cfg = tiny(heads.name, steps=1)  # no name given; a relative data folder
    before = copy.deepcopy(cfg)
    r = train_image(cfg)
    assert dataclasses.asdict(cfg) == dataclasses.asdict(before) and cfg.given == before.given
    settled = dataclasses.asdict(r.config)
    assert settled == {**dataclasses.asdict(before), "name": "heads", "data": str(heads.resolve())}
    assert json.loads((r.run / "config.json").read_text()) == settled
    resume = ImageTrainConfig(name="heads", steps=2)
    before = copy.deepcopy(resume)
    r = train_image(resume, resume=True)
    assert dataclasses.asdict(resume) == dataclasses.asdict(before)
    assert dataclasses.asdict(r.config) == {**settled, "steps": 2}


def test_two_process_gloo_run(heads):
    args = [
        "train-image",
        "--data",
        str(heads),
        "--resolution",
        "16",
        "--name",
        "ddp",
        "--steps",
        "2",
        "--batch",
        "4",
        "--channel-base",
        "256",
        "--channel-max",
        "16",
        "--mapping-layers",
        "2",
        "--w-dim",
        "16",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--save-every",
        "1",
    ]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "mocohd_cli",
        *args,
    ]
    p = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=ROOT, timeout=300
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("finished at step 2/2") == 1
    assert len(_ckpt("ddp")["rng"]) == 2


def test_cli(capsys, heads):
    code, out, _ = run(
        capsys,
        "train-image",
        "--data",
        str(heads),
        "--resolution",
        "16",
        "--steps",
        "1",
        "--batch",
        "2",
        "--channel-base",
        "256",
        "--channel-max",
        "16",
        "--mapping-layers",
        "2",
        "--w-dim",
        "16",
        "--workers",
        "0",
        "--device",
        "cpu",
    )
    assert code == 0 and "finished at step 1/1" in out and "mocohd pca --image heads" in out
    code, _, err = run(capsys, "train-image", "--name", "ghost", "--resume")
    assert code == 1 and "no checkpoint" in err


def _cli_args(heads, name, steps, *extra):
    return [
        "train-image",
        "--data",
        str(heads),
        "--resolution",
        "16",
        "--name",
        name,
        "--steps",
        str(steps),
        "--batch",
        "2",
        "--channel-base",
        "256",
        "--channel-max",
        "16",
        "--mapping-layers",
        "2",
        "--w-dim",
        "16",
        "--workers",
        "0",
        "--device",
        "cpu",
        *extra,
    ]


def _stored(name) -> dict:
    return json.loads((Path(os.environ["MOCOHD_HOME"]) / "runs" / f"{name}-image" / "config.json").read_text())


def test_resume_keeps_the_runs_settings_and_refuses_changes(capsys, heads):
    code, _, err = run(capsys, *_cli_args(heads, "kept", 2, "--save-every", "1", "--log-every", "2", "--no-augment"))
    assert code == 0, err
    code, _, err = run(capsys, "train-image", "--name", "kept", "--resume", "--steps", "3")
    assert code == 0, err
    kept = _stored("kept")
    assert (kept["save_every"], kept["log_every"], kept["workers"], kept["device"], kept["augment"]) == (
        1,
        2,
        0,
        "cpu",
        False,
    )
    assert _ckpt("kept")["step"] == 3
    code, _, err = run(
        capsys, "train-image", "--name", "kept", "--resume", "--steps", "4", "--lr", "0.5", "--w-dim", "8"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot change lr, w_dim (--w-dim) when resuming image run 'kept'" in err and "lr 0.0025, w_dim 16" in err
    code, _, err = run(capsys, "train-image", "--name", "kept", "--resume", "--force")
    assert code == 2 and "resume continues a run and force starts it over" in err
    # the same values as the run's are fine
    code, out, err = run(capsys, *_cli_args(heads, "kept", 4, "--resume", "--no-augment"))
    assert code == 0 and "finished at step 4/4" in out, err


def test_an_image_run_killed_before_its_first_checkpoint_starts_over(heads):
    r = train_image(tiny(heads, name="early", steps=1, log_every=1))
    (r.run / "checkpoint.pt").unlink()
    notes = []
    r = train_image(
        ImageTrainConfig(name="early", steps=2),
        resume=True,
        on_event=lambda k, i: k == "note" and notes.append(i["text"]),
    )
    assert r.step == 2 and any("stopped before its first checkpoint: starting it from step 0" in n for n in notes)
    (r.run / "checkpoint.pt").unlink()
    r = train_image(tiny(heads, name="early", steps=1))  # no --force needed
    assert r.step == 1 and _ckpt("early")["step"] == 1
    (r.run / "samples").mkdir(exist_ok=True)
    (r.run / "samples" / ".step_0000009.png.tmp-999999").write_bytes(b"half a png")  # a sample write cut by a kill
    r = train_image(ImageTrainConfig(name="early", steps=2), resume=True)
    assert r.step == 2 and not list(r.run.rglob(".*.tmp-*"))


def test_settings_are_checked_by_the_library(heads):
    for bad, words in (
        (dict(r1_every=0), r"^r1_every \(--r1-every\) must"),
        (dict(lr=float("nan")), "^lr must"),
        (dict(log_every=0), r"^log_every \(--log-every\) must"),
        (dict(precision="fp16"), "^precision must"),
        (dict(resolution=24), "power of two"),
        (dict(ema_rampup=-1.0), r"^ema_rampup \(--ema-rampup\) must"),
        (dict(steps=0), "^steps must"),
    ):
        with pytest.raises(UsageError, match=words):
            ImageTrainConfig(**bad)
    assert ImageTrainConfig(ema_rampup=None).ema_rampup is None  # off
