"""Motion training end to end at tiny sizes: both domains, checkpoints, resume,
kills, the exported model, torchrun with gloo, and the command line."""

import copy
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from mocohd_cli import MocohdError, load_motion, store
from mocohd_cli.errors import UsageError
from mocohd_cli.formats import canonical
from mocohd_cli.loaders.pca_bases import pca_for
from mocohd_cli.motion.generator import MotionConfig, MotionGenerator
from mocohd_cli.render import RenderConfig, render
from mocohd_cli.train import TrainConfig, load_checkpoint, train

from .conftest import randomized_generator, run, tiny_config

ROOT = Path(__file__).resolve().parents[1]
# tiny training steps on one thread (conftest's one_thread); the processes they start get OMP_NUM_THREADS=1
pytestmark = pytest.mark.usefixtures("one_thread")


def _moving_bar_video(folder: Path, n: int, offset: int, size: int = 16):
    folder.mkdir(parents=True)
    for i in range(n):
        a = np.zeros((size, size, 3), np.uint8)
        a[:, (i + offset) % size] = (255, 128 + offset, 64)
        iio.imwrite(folder / f"frame_{i + 1}.png", a)


@pytest.fixture
def setup(tmp_path):
    """A tiny frozen generator (16 px, w 32) and a folder of 3 videos plus junk."""
    G = randomized_generator(tiny_config(16))
    gpath = tmp_path / "g.safetensors"
    canonical.save_model(gpath, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
    data = tmp_path / "bars"
    for v in range(3):
        _moving_bar_video(data / f"v{v}", 10, v)
    _moving_bar_video(data / "short", 2, 0)  # too short for a clip
    (data / "broken.mp4").write_bytes(b"\x00" * 100)  # unreadable
    (data / "readme.txt").write_text("junk")
    pca_for(str(gpath), samples=1000, batch=500)  # cached in the store: runs need not fit it
    return gpath, data


def tiny(setup, **kw) -> TrainConfig:
    gpath, data = setup
    base = dict(
        data=str(data),
        image=str(gpath),
        steps=2,
        batch=2,
        frames=4,
        time_step=2,
        h_dim=16,
        dv_channels=4,
        di_channels=4,
        proj_dim=8,
        queue=8,
        workers=0,
        pca_samples=1000,
        sample_every=1000,
        sample_videos=2,
        log_every=1,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)


def _loss_records(path: Path) -> list[dict]:
    """metrics.jsonl's loss lines (not the monitor's or the evaluations' records)."""
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return [x for x in lines if "monitor" not in x and "eval" not in x]


def _state(name):
    return {
        k: v.clone()
        for k, v in load_checkpoint(Path(os.environ["MOCOHD_HOME"]) / "runs" / name / "checkpoint.pt")["gan"][
            "M"
        ].items()
    }


@pytest.mark.parametrize("domain", ["cross", "in"])
def test_a_few_steps_train_the_motion_generator(setup, domain):
    events = []
    r = train(tiny(setup, domain=domain, name=f"run-{domain}"), on_event=lambda k, i: events.append((k, i)))
    assert r.step == 2 and not r.interrupted and r.motion.is_file()
    ck = load_checkpoint(r.run / "checkpoint.pt")
    assert all(torch.isfinite(torch.tensor(v)) for v in r.losses.values())
    for d in ("D_V", "D_I"):
        assert all(torch.isfinite(t).all() for t in ck["gan"][d].values() if t.is_floating_point())
    # the junk was skipped and counted, in one line
    notes = [i["text"] for k, i in events if k == "note"]
    assert any("3 videos" in n and "1 unreadable" in n and "1 too short" in n and "1 not videos" in n for n in notes)
    # metrics: one JSON line per step with the losses
    lines = _loss_records(r.run / "metrics.jsonl")
    assert [x["step"] for x in lines] == [1, 2] and "G_video" in lines[0] and "mutual" in lines[0]
    if domain == "cross":
        assert "contrastive" in lines[0] and "match" in lines[0]
        # the queue took one global batch per G step: 2 steps x 5 G steps x 2 clips, modulo its length 8
        assert int(ck["gan"]["D_I"]["queue_ptr"]) == (2 * 5 * 2) % 8


def test_training_changes_the_motion_weights(setup):
    cfg = tiny(setup, name="moves", steps=1)
    r = train(cfg)
    trained = load_motion(r.motion).state_dict()
    # the initial weights: the same seed, the same construction as the trainer
    basis, _, _ = pca_for(cfg.image)
    torch.manual_seed(cfg.seed)
    M0 = MotionGenerator(
        MotionConfig(w_dim=32, noise_dim=32, h_dim=16, n_pca=32, w_residual=0.2), basis.components, basis.stdev
    )
    moved = [k for k, p in M0.named_parameters() if not torch.equal(p.detach(), trained[k])]
    assert len(moved) >= 8, moved
    torch.testing.assert_close(trained["pca_components"], M0.pca_components)


def test_resume_from_another_folder(setup, tmp_path, monkeypatch):
    gpath, data = setup
    monkeypatch.chdir(data.parent)
    train(tiny(setup, name="rel", data="bars", image="g.safetensors", steps=1))
    monkeypatch.chdir(tmp_path / "mocohd-home")
    r = train(TrainConfig(name="rel", steps=2, workers=0, device="cpu"), resume=True)
    assert r.step == 2


def test_resume_continues_exactly(setup):
    train(tiny(setup, name="straight", steps=4, save_every=2))
    train(tiny(setup, name="halves", steps=2, save_every=2))
    train(tiny(setup, name="halves", steps=4, save_every=2), resume=True)
    a, b = _state("straight"), _state("halves")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    full = load_checkpoint(Path(os.environ["MOCOHD_HOME"]) / "runs" / "straight" / "checkpoint.pt")
    half = load_checkpoint(Path(os.environ["MOCOHD_HOME"]) / "runs" / "halves" / "checkpoint.pt")
    for part in ("D_V", "D_I"):
        assert all(torch.equal(full["gan"][part][k], half["gan"][part][k]) for k in full["gan"][part])
    assert torch.equal(full["rng"][0], half["rng"][0]) and full["step"] == half["step"] == 4
    steps = [x["step"] for x in _loss_records(Path(os.environ["MOCOHD_HOME"]) / "runs/halves/metrics.jsonl")]
    assert steps == [1, 2, 3, 4]


def test_existing_runs_and_missing_checkpoints(setup):
    train(tiny(setup, name="r1", steps=1))
    with pytest.raises(MocohdError, match="already exists.*give resume to continue it, or force"):
        train(tiny(setup, name="r1", steps=1))
    train(tiny(setup, name="r1", steps=1), force=True)  # starts over
    with pytest.raises(MocohdError, match="no checkpoint to resume"):
        train(tiny(setup, name="nothing"), resume=True)
    with pytest.raises(MocohdError, match="resolution"):
        train(tiny(setup, name="big", frame_size=32))
    with pytest.raises(UsageError, match="^batch must be a whole number >= 1, got 0$"):
        train(tiny(setup, name="odd", batch=0))


def test_a_new_run_never_replaces_a_model_it_did_not_make(setup):
    from mocohd_cli.loaders import import_model
    from mocohd_cli.store import weights_dir

    import_model(weights_dir() / "motion-demo.safetensors", "taken")
    before = canonical.file_sha256(store.store_path("motion", "taken"))
    with pytest.raises(MocohdError, match="already holds motion model 'taken'.*give force"):
        train(tiny(setup, name="taken", steps=1))
    assert canonical.file_sha256(store.store_path("motion", "taken")) == before
    train(tiny(setup, name="taken", steps=1), force=True)  # asked for: replaced
    assert canonical.read_header(store.store_path("motion", "taken")).source["run"] == "taken"
    train(tiny(setup, name="taken", steps=1), force=True)  # its own export: no question


def test_fine_tune_from_a_motion_model(setup):
    r = train(tiny(setup, name="base", steps=1))
    r2 = train(tiny(setup, name="tuned", steps=1, init="base"))
    base, tuned = load_motion(r.motion), load_motion(r2.motion)
    assert base.cfg == tuned.cfg
    assert not torch.equal(base.w, tuned.w)


def test_fine_tuning_keeps_the_models_architecture(capsys, setup):
    """--init takes n_pca, h_dim, noise_dim, w_residual and oscillators from the model (before, they
    silently replaced the options given): a given value that differs is refused before any work, in
    one line naming both values; the model's own value is fine, and the settings left out are its."""
    train(tiny(setup, name="base", steps=1, n_pca=8, noise_dim=6, w_residual=0.3, monitor=False))
    for given, said in (
        (dict(n_pca=4), "n_pca 8, not n_pca (--n-pca) 4"),
        (dict(h_dim=32), "h_dim 16, not h_dim (--h-dim) 32"),
        (dict(noise_dim=7), "noise_dim 6, not noise_dim (--noise-dim) 7"),
        (dict(w_residual=0.2), "w_residual 0.3, not w_residual (--w-residual) 0.2"),
        (dict(oscillators=2), "oscillators 0, not oscillators 2"),
    ):
        with pytest.raises(UsageError, match=rf"^the init model 'base' has {re.escape(said)}: fine-tuning keeps"):
            train(tiny(setup, name="tuned", init="base", **given))
    code, _, err = run(capsys, *_cli_args(setup, "tuned", 1, "--init", "base", "--h-dim", "32", "--oscillators", "4"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "the init model 'base' has h_dim 16, oscillators 0, not h_dim (--h-dim) 32, oscillators 4" in err
    assert not _runs("tuned").exists() and not store.store_path("motion", "tuned").exists()  # nothing ran
    code, out, err = run(capsys, *_cli_args(setup, "tuned", 1, "--init", "base", "--n-pca", "8", "--no-monitor"))
    assert code == 0 and "finished at step 1/1" in out, err
    assert load_motion("tuned").cfg == load_motion("base").cfg
    stored = _stored("tuned")
    assert (stored["n_pca"], stored["h_dim"], stored["noise_dim"], stored["w_residual"], stored["oscillators"]) == (
        8,
        16,
        6,
        0.3,
        0,
    )


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_precisions_stay_finite(setup, precision, dtype):
    """The step really runs under autocast in the precision's dtype: the convolutions of the video
    discriminator (3D) and of the image discriminator (2D) compute in it, seen by a forward hook on
    every module, while the gradient penalty stays in float32; the losses stay finite."""
    seen: dict[str, set] = {}

    def hook(module, args, output):
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d)):  # spectrally normalised ones too
            seen.setdefault("3d" if isinstance(module, torch.nn.Conv3d) else "2d", set()).add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        r = train(tiny(setup, name=f"amp-{precision}", steps=1, precision=precision))
    finally:
        handle.remove()
    assert dtype in seen["3d"] and dtype in seen["2d"], seen
    assert torch.float32 in seen["3d"], seen  # the gradient penalty
    assert all(np.isfinite(v) for v in r.losses.values())


def test_exported_model_renders_and_samples_are_written(setup, tmp_path):
    gpath, _ = setup
    r = train(tiny(setup, name="export", steps=2, sample_every=1))
    assert sorted(p.name for p in (r.run / "samples").iterdir()) == ["step_0000001.mp4", "step_0000002.mp4"]
    out = render(tmp_path / "v.mp4", RenderConfig(motion="export", image=str(gpath), frames=6, device="cpu"))
    assert out.frames == 6 and out.cross_domain is None  # trained with this generator: no retargeting
    assert load_motion("export").image["image_sha256"] == canonical.read_header(gpath).weights_sha256


def _cli_args(setup, name, steps, *extra):
    gpath, data = setup
    return [
        "train",
        "--data",
        str(data),
        "--image",
        str(gpath),
        "--name",
        name,
        "--steps",
        str(steps),
        "--batch",
        "2",
        "--frames",
        "4",
        "--h-dim",
        "16",
        "--dv-channels",
        "4",
        "--di-channels",
        "4",
        "--queue",
        "8",
        "--workers",
        "0",
        "--device",
        "cpu",
        *extra,
    ]


@pytest.fixture
def spawn():
    """Start `python -m mocohd_cli ...` in its own process group; killed at teardown whatever happens."""
    procs = []

    def start(args):
        p = subprocess.Popen(
            [sys.executable, "-m", "mocohd_cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            start_new_session=True,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _wait_for(path: Path, proc, timeout=120):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def test_sigkill_never_leaves_a_corrupt_checkpoint(setup, spawn):
    proc = spawn(_cli_args(setup, "killed", 10000, "--save-every", "1"))
    ckpt = Path(os.environ["MOCOHD_HOME"]) / "runs" / "killed" / "checkpoint.pt"
    _wait_for(ckpt, proc)
    time.sleep(0.7)  # several more checkpoints: the kill lands at an arbitrary moment
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    step = load_checkpoint(ckpt)["step"]
    assert step >= 1
    r = train(TrainConfig(name="killed", steps=step + 1, workers=0, device="cpu"), resume=True)
    assert r.step == step + 1 and load_motion("killed") is not None


def test_sigint_saves_and_exits_cleanly(setup, spawn):
    """Ctrl-C reaches the whole process group, data workers included."""
    args = _cli_args(setup, "stopped", 10000, "--save-every", "1000")
    args[args.index("--workers") + 1] = "1"
    proc = spawn(args)
    metrics = Path(os.environ["MOCOHD_HOME"]) / "runs" / "stopped" / "metrics.jsonl"
    _wait_for(metrics, proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "interrupted at step" in out and "--resume" in out and "Traceback" not in err
    stopped_at = int(re.search(r"interrupted at step (\d+)/10000", out).group(1))
    ck = load_checkpoint(metrics.parent / "checkpoint.pt")
    assert ck["step"] == stopped_at  # the checkpoint holds the very step it reported
    last = json.loads(metrics.read_text().splitlines()[-1])
    assert last["step"] <= stopped_at


@pytest.mark.parametrize("nan", [float("nan"), torch.tensor(float("nan"))], ids=["float", "on-device"])
def test_divergence_keeps_the_last_good_checkpoint(setup, monkeypatch, nan):
    """A non-finite loss stops the run before it saves: a float at once, a loss left on the device
    (read on log lines and before each checkpoint) at the checkpoint of its step."""
    from mocohd_cli.train.motion_gan import MotionGAN

    train(tiny(setup, name="nan", steps=2, save_every=1))
    good = load_checkpoint(Path(os.environ["MOCOHD_HOME"]) / "runs" / "nan" / "checkpoint.pt")
    exported = canonical.read_header(Path(os.environ["MOCOHD_HOME"]) / "motion" / "nan.safetensors").weights_sha256
    real = MotionGAN.iteration
    monkeypatch.setattr(MotionGAN, "iteration", lambda self, x: {**real(self, x), "G_video": nan})
    with pytest.raises(MocohdError, match="diverged at step 3.*resume from the last checkpoint"):
        train(tiny(setup, name="nan", steps=4, save_every=1), resume=True)
    after = load_checkpoint(Path(os.environ["MOCOHD_HOME"]) / "runs" / "nan" / "checkpoint.pt")
    assert after["step"] == 2 and all(torch.equal(good["gan"]["M"][k], v) for k, v in after["gan"]["M"].items())
    assert (
        canonical.read_header(Path(os.environ["MOCOHD_HOME"]) / "motion" / "nan.safetensors").weights_sha256 == exported
    )


def test_grey_alpha_and_16_bit_frames_train(setup, tmp_path):
    """Frame folders of grey+alpha (LA) and 16-bit grey (I;16) PNGs become 3-channel clips (LA
    once gave 2-channel ones that crashed the discriminators)."""
    from PIL import Image

    data = tmp_path / "modes"
    for v in range(3):
        (data / f"v{v}").mkdir(parents=True)
        for i in range(10):
            a = np.zeros((16, 16), np.uint16)
            a[:, (i + v) % 16] = 60000
            im = Image.fromarray(a) if v == 2 else Image.fromarray(np.stack([(a >> 8).astype(np.uint8)] * 2, -1), "LA")
            im.save(data / f"v{v}" / f"{i}.png")
    r = train(tiny(setup, name="modes", data=str(data), steps=1))
    assert r.step == 1 and r.motion.is_file()


def test_missing_data_fails_before_any_work(setup, tmp_path):
    with pytest.raises(MocohdError, match="not a folder"):
        train(tiny(setup, name="nodata", data=str(tmp_path / "nowhere")))
    home = Path(os.environ["MOCOHD_HOME"])
    assert not (home / "runs" / "nodata" / "config.json").exists() and not (home / "data").exists()


def test_two_process_gloo_run(setup):
    """torchrun with 2 CPU processes: the batch is split, the ranks stay in sync
    (the trainer compares their checksums at every checkpoint) and rank 0 writes."""
    gpath, data = setup
    args = _cli_args(setup, "ddp", 2, "--save-every", "1")
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
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "finished at step 2/2" in p.stdout
    assert p.stdout.count("finished at step") == 1  # one writer
    ck = load_checkpoint(Path(os.environ["MOCOHD_HOME"]) / "runs" / "ddp" / "checkpoint.pt")
    assert len(ck["rng"]) == 2 and not torch.equal(ck["rng"][0], ck["rng"][1])  # one random stream per rank
    assert int(ck["gan"]["D_I"]["queue_ptr"]) == (2 * 5 * 2) % 8  # gathered: the global batch per G step


def test_cli_train_errors_are_one_line(capsys, setup):
    code, _, err = run(capsys, "train", "--image", "demo")
    assert code == 2 and "give data (and image)" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "train", "--name", "ghost", "--resume")
    assert code == 1 and "no checkpoint" in err
    code, _, err = run(capsys, *_cli_args(setup, "x", 1, "--domain", "sideways"))
    assert code == 2 and "domain must be cross or in, got 'sideways'" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, *_cli_args(setup, "ok", 1))
    assert code == 0 and "finished at step 1/1" in out and "mocohd render --motion ok" in out


def test_info_shows_the_generator_a_trained_motion_belongs_to(capsys, setup):
    gpath, _ = setup
    train(tiny(setup, name="told", steps=1))
    code, out, _ = run(capsys, "info", "told", "--kind", "motion")
    sha = canonical.read_header(gpath).weights_sha256
    assert code == 0 and f"g (weights {sha[:12]})" in out and "trained with" in out and "mocohd-train" in out


# ---------------------------------------------------------------------------- resume: what it keeps, what it refuses


def _runs(name) -> Path:
    return Path(os.environ["MOCOHD_HOME"]) / "runs" / name


def _stored(name) -> dict:
    return json.loads((_runs(name) / "config.json").read_text())


def test_resume_keeps_the_runs_intervals_unless_given(capsys, setup):
    """--resume without --save-every / --log-every / --workers / ... keeps the run's own
    values (not the command line's defaults); given ones change, with a note."""
    code, _, err = run(
        capsys, *_cli_args(setup, "keep", 2, "--save-every", "1", "--log-every", "2", "--sample-every", "7")
    )
    assert code == 0, err
    code, _, err = run(capsys, "train", "--name", "keep", "--resume", "--steps", "3")
    assert code == 0, err
    kept = _stored("keep")
    assert (kept["save_every"], kept["log_every"], kept["sample_every"]) == (1, 2, 7)
    assert (kept["workers"], kept["device"], kept["steps"]) == (0, "cpu", 3)
    assert "resuming run 'keep' with steps 2 -> 3" in err
    assert [x["step"] for x in _loss_records(_runs("keep") / "metrics.jsonl")] == [2, 3]
    # from Python: the fields given to TrainConfig are the changes, the others are the run's
    r = train(TrainConfig(name="keep", steps=4, log_every=1), resume=True)
    assert r.step == 4 and load_checkpoint(r.run / "checkpoint.pt")["step"] == 4
    kept = _stored("keep")
    assert (kept["save_every"], kept["log_every"], kept["workers"], kept["device"], kept["h_dim"]) == (
        1,
        1,
        0,
        "cpu",
        16,
    )


def test_resume_refuses_changed_settings_and_force(capsys, setup):
    gpath, data = setup
    train(tiny(setup, name="fixed", steps=1))
    code, _, err = run(
        capsys,
        "train",
        "--name",
        "fixed",
        "--resume",
        "--lr",
        "0.5",
        "--image",
        "other",
        "--h-dim",
        "64",
        "--steps",
        "2",
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot change image, lr, h_dim (--h-dim) when resuming run 'fixed'" in err
    assert "lr 0.0001" in err and "h_dim 16" in err and "another name" in err and "Error" not in err
    assert load_checkpoint(_runs("fixed") / "checkpoint.pt")["step"] == 1  # nothing ran
    code, _, err = run(capsys, "train", "--name", "fixed", "--resume", "--force")
    assert code == 2 and "resume continues a run and force starts it over" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UsageError, match=r"cannot change domain, frames when resuming run 'fixed'.*frames 4"):
        train(tiny(setup, name="fixed", steps=2, frames=5, domain="in"), resume=True)
    # given values equal to the run's are fine (the data folder and generator as given at the start)
    code, out, err = run(capsys, *_cli_args(setup, "fixed", 2, "--resume", "--lr", "1e-4", "--frame-size", "16"))
    assert code == 0 and "finished at step 2/2" in out, err


def test_a_run_killed_before_its_first_checkpoint_starts_over(setup):
    """Nothing to lose, so no --force needed; a --resume starts it from step 0 with its settings."""
    r = train(tiny(setup, name="early", steps=2, sample_every=1))
    (r.run / "checkpoint.pt").unlink()  # what a kill before the first checkpoint leaves
    (r.run / ".checkpoint.pt.tmp-99999").write_bytes(b"half a checkpoint")
    notes = []
    r = train(
        tiny(setup, name="early", steps=1, sample_every=1),
        on_event=lambda k, i: k == "note" and notes.append(i["text"]),
    )
    assert r.step == 1 and any("stopped before its first checkpoint: starting it over" in n for n in notes)
    assert sorted(p.name for p in r.run.rglob("*")) == [
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
        "samples",
        "step_0000001.mp4",
    ]  # the old run's step 2 sample is gone
    assert [x["step"] for x in _loss_records(r.run / "metrics.jsonl")] == [1]
    (r.run / "checkpoint.pt").unlink()
    notes.clear()
    r = train(
        TrainConfig(name="early", steps=2), resume=True, on_event=lambda k, i: k == "note" and notes.append(i["text"])
    )
    assert r.step == 2 and any("starting it from step 0 with its settings" in n for n in notes)
    assert _stored("early")["sample_every"] == 1 and _stored("early")["workers"] == 0  # the run's, not the defaults


def test_piped_training_prints_plain_progress_lines(capsys, setup):
    code, out, err = run(capsys, *_cli_args(setup, "piped", 3, "--log-every", "1", "--save-every", "2"))
    assert code == 0, err
    lines = err.splitlines()
    assert any(re.fullmatch(r"step 1/3  [\d.]+ it/s  G_video=[\d.-]+ .*mutual=[\d.-]+", x) for x in lines), err
    assert any(x.startswith("step 3/3  ") for x in lines) and "checkpoint at step 2" in lines


def test_clips_must_be_long_enough_for_the_video_discriminator(capsys, setup):
    """--frames 2 or 3 passed the settings' check and crashed inside D_V: the shortest clip
    comes from D_V's layers (shortest_clip: its pooling between scales), in-domain one frame more
    (it sees the pairs (frame 1, frame t)); refused in one line before any work."""
    for domain, least, what in (("in", 4, "3 (frame 1, frame t) pairs"), ("cross", 3, "clips of 3 frames")):
        said = (
            f"frames must be at least {least} {domain}-domain (the video discriminator needs {what}), got {least - 1}"
        )
        with pytest.raises(UsageError, match=f"^{re.escape(said)}$"):
            TrainConfig(domain=domain, frames=least - 1)
        code, _, err = run(
            capsys, *_cli_args(setup, f"short-{domain}", 1, "--domain", domain, "--frames", str(least - 1))
        )
        assert code == 2 and err.strip().splitlines() == [f"error: {said}"], err
        assert not _runs(f"short-{domain}").exists() and not (Path(os.environ["MOCOHD_HOME"]) / "data").exists()
    r = train(tiny(setup, name="three", frames=3, domain="cross", steps=1, monitor=False))  # the shortest trains
    assert r.step == 1 and all(np.isfinite(v) for v in r.losses.values())
    from mocohd_cli.discriminators import shortest_clip

    assert shortest_clip() == 3


def test_settings_are_checked_by_the_library(setup):
    for bad in (
        dict(log_every=0),
        dict(save_every=-1),
        dict(lr=0.0),
        dict(lr=float("nan")),
        dict(lr=float("inf")),
        dict(steps=0),
        dict(frames=1),
        dict(workers=-1),
        dict(batch=2.5),
        dict(w_match=-1.0),
        dict(domain="sideways"),
        dict(precision="fp8"),
        dict(moco_momentum=1.5),
        dict(sample_videos=0),
    ):
        with pytest.raises(UsageError) as e:
            TrainConfig(**bad)
        name = next(iter(bad))  # named as Python spells it, with the option where that is spelled otherwise
        assert len(str(e.value).splitlines()) == 1 and str(e.value).startswith(name)
        assert ("(--" + name.replace("_", "-") + ")" in str(e.value)) == ("_" in name)
    cfg = tiny(setup, name="later")
    cfg.log_every = 0  # assigned after construction: checked when the run starts, before any work
    with pytest.raises(UsageError, match=r"log_every \(--log-every\) must be a whole number >= 1, got 0"):
        train(cfg)
    assert not _runs("later").exists()


def test_train_leaves_the_config_it_was_given_unchanged(setup, tmp_path, monkeypatch):
    """The run settles its name, frame size, model sizes and paths in its own copy: the result's
    config, which config.json records; the caller's config stays as it was (a resume's and a
    fine-tuning's too)."""
    monkeypatch.chdir(tmp_path)
    cfg = tiny(setup, data="bars", steps=1, monitor=False)  # no name, frame size, n_pca or noise_dim given
    before = copy.deepcopy(cfg)
    r = train(cfg)
    assert dataclasses.asdict(cfg) == dataclasses.asdict(before) and cfg.given == before.given
    settled = dataclasses.asdict(r.config)
    assert settled == {
        **dataclasses.asdict(before),
        "name": "bars",
        "data": str(tmp_path / "bars"),
        "frame_size": 16,
        "n_pca": 32,
        "noise_dim": 32,
        "motion_d": "pixels",  # no encoder: the authors' discriminators
    }
    assert json.loads((r.run / "config.json").read_text()) == settled
    resume = TrainConfig(name="bars", steps=2)
    before = copy.deepcopy(resume)
    r = train(resume, resume=True)
    assert dataclasses.asdict(resume) == dataclasses.asdict(before)
    assert dataclasses.asdict(r.config) == {**settled, "steps": 2}
    tune = tiny(setup, name="tuned", steps=1, init="bars", monitor=False)
    before = copy.deepcopy(tune)
    r = train(tune)
    assert dataclasses.asdict(tune) == dataclasses.asdict(before) and tune.n_pca is None
    assert (r.config.n_pca, r.config.noise_dim, r.config.frame_size) == (32, 32, 16)


def test_config_remembers_what_was_given():
    cfg = TrainConfig("d", "g", steps=5)
    assert cfg.given == {"data", "image", "steps"} and cfg.lr == 1e-4
    cfg.lr = 0.5
    assert cfg.given == {"data", "image", "steps", "lr"}
    assert TrainConfig(data=Path("d")).data == "d"  # a Path works as its text


def test_cli_defaults_are_the_configs():
    """The command line shows the library's defaults and passes only the options given."""
    from dataclasses import fields

    import typer.main

    from mocohd_cli import cli
    from mocohd_cli.train.image_trainer import ImageTrainConfig

    for command, config in (("train", TrainConfig), ("train-image", ImageTrainConfig)):
        click_cmd = typer.main.get_command(cli.app).commands[command]
        defaults = {f.name: f.default for f in fields(config)}
        params = [p for p in click_cmd.params if p.name not in ("resume", "force")]
        assert {p.name for p in params} <= set(defaults)
        for p in params:
            assert p.default == defaults[p.name] or (p.default is None and defaults[p.name] is None), (command, p.name)
