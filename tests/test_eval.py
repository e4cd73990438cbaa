"""`mocohd eval` and the metrics API: FVD / FID of rendered or given videos against a dataset.

The detectors here are small random ones saved into the store (an I3D at 1/16 of
the published widths; the fixed Inception-v3 resizing to 75 px instead of 299),
so every path runs in seconds; their exactness against the reference files is
tests/test_i3d.py's and tests/test_inception.py's.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from mocohd_cli import store
from mocohd_cli.data.procedural import write_dataset
from mocohd_cli.detectors import I3D, I3DConfig, InceptionConfig, InceptionV3
from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.formats import canonical
from mocohd_cli.loaders import load_image_generator
from mocohd_cli.loaders.detector_models import load_detector
from mocohd_cli.loaders.motion_models import load_motion, save_motion
from mocohd_cli.loaders.pca_bases import pca_for
from mocohd_cli.metrics.evaluate import MetricResult, evaluate, fake_videos, fvd, run_of, score
from mocohd_cli.metrics.protocol import sample_real_clips
from mocohd_cli.motion import MotionGenerator
from mocohd_cli.train import TrainConfig, train

from .conftest import randomized_generator, run, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def random_detector(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded weights with a sensible scale (He init; small biases), so features are not all zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net


def store_detector(kind: str, seed: int = 0, name: str | None = None) -> Path:
    """A small random detector of ``kind`` saved in the store under ``name`` (default: the kind)."""
    cfg = I3DConfig.scaled(1 / 16) if kind == "i3d" else InceptionConfig(size=75)
    net = random_detector(I3D(cfg) if kind == "i3d" else InceptionV3(cfg), seed)
    store.kind_dir(kind, create=True)
    path = store.store_path(kind, name or kind)
    canonical.save_model(
        path, net.state_dict(), kind=kind, family=kind, config=cfg.to_dict(), source={"format": "test"}
    )
    return path


@pytest.fixture
def heads(tmp_path):
    """Six procedural talking heads of 20 frames at 16 px, and the small I3D in the store."""
    store_detector("i3d")
    return write_dataset(tmp_path / "heads", videos=6, frames=20, size=16, seed=0)


def fvd16(data, **kw) -> MetricResult:
    base = dict(motion="demo", image="demo", videos=4, seed=0, device="cpu", batch=4)
    base.update(kw)
    return evaluate(["fvd16"], data, **base)[0]


@pytest.mark.usefixtures("one_thread")  # tiny renders and detectors (tests/conftest.py)
def test_fvd_of_rendered_videos_is_seeded_and_reuses_real_statistics(heads, isolated_store):
    first = fvd16(heads)
    assert first.metric == "fvd16" and np.isfinite(first.value) and first.value > 0
    assert (first.real, first.fake, first.skipped, first.real_videos) == (4, 4, 0, 6)
    assert not first.real_cached and first.detector["name"] == "i3d"
    cached = sorted((isolated_store / "eval-stats").glob("*.safetensors"))
    assert len(cached) == 1
    again = fvd16(heads)
    assert again.real_cached and again.value == first.value  # the same seed: the same number, bit for bit
    other = fvd16(heads, seed=1)
    assert not other.real_cached and other.value != first.value
    assert len(list((isolated_store / "eval-stats").glob("*.safetensors"))) == 2


@pytest.mark.usefixtures("one_thread")  # tiny renders and detectors (tests/conftest.py)
def test_cached_statistics_are_used_not_recomputed(heads, monkeypatch):
    fvd16(heads)
    from mocohd_cli.metrics import evaluate as ev

    embedded = []
    real_embed = ev.embed
    monkeypatch.setattr(
        ev, "embed", lambda det, clips, **kw: embedded.append(clips.shape[0]) or real_embed(det, clips, **kw)
    )
    assert fvd16(heads).real_cached
    assert sum(embedded) == 4  # the fakes only
    # another detector (other weights): the cached statistics do not apply
    store_detector("i3d", seed=1)
    embedded.clear()
    r = fvd16(heads)
    assert not r.real_cached and sum(embedded) == 8


def test_a_set_against_itself_is_zero_and_different_sets_are_not(heads):
    g = torch.Generator().manual_seed(0)
    smooth = [
        torch.linspace(0, 255, 16 * 8 * 8 * 3).reshape(16, 8, 8, 3).roll(k * 37).to(torch.uint8) for k in range(5)
    ]
    noise = [torch.randint(0, 256, (16, 8, 8, 3), generator=g, dtype=torch.uint8) for _ in range(5)]
    same = fvd(smooth, smooth, batch=5)  # 16-frame videos: real and fake clips are the same clips
    apart = fvd(smooth, noise, batch=5)
    assert abs(same) < 1e-6 * max(1.0, apart) and apart > 1.0
    assert score("fvd16", noise, smooth, detector=load_detector("i3d")) == pytest.approx(apart, rel=1e-9)


def test_video_i_is_the_same_whatever_it_is_rendered_with(heads):
    G, M = load_image_generator("demo"), load_motion("demo")
    frames = [0, 3, 7]
    together = torch.cat(list(fake_videos(M, G, [0, 1, 2, 3], frames, seed=5, batch=5)))
    alone = next(fake_videos(M, G, [2], frames, seed=5, batch=2))
    assert together.shape == (4, 3, 64, 64, 3) and alone.shape == (1, 3, 64, 64, 3)
    assert (together[2].int() - alone[0].int()).abs().max() <= 1  # batched float rounding at most
    other_seed = next(fake_videos(M, G, [2], frames, seed=6))
    assert not torch.equal(other_seed, alone)


def test_fvd128_sub8_renders_only_the_frames_it_scores(heads, monkeypatch):
    from mocohd_cli.metrics import evaluate as ev

    seen = []
    real_fake_videos = ev.fake_videos

    def spy(M, G, indices, frames, *a, **kw):
        seen.append(list(frames))
        return real_fake_videos(M, G, indices, frames, *a, **kw)

    monkeypatch.setattr(ev, "fake_videos", spy)
    long = write_dataset(Path(heads).parent / "long", videos=3, frames=128, size=8, seed=1)
    r = evaluate(["fvd128-sub8"], long, motion="demo", image="demo", videos=3, device="cpu", batch=8)[0]
    assert seen == [list(range(0, 121, 8))] and r.real == 3 and np.isfinite(r.value)


def test_fid_on_frames_with_the_inception_detector(heads):
    store_detector("inception")
    r = evaluate(["fid"], heads, motion="demo", image="demo", fid_frames=20, device="cpu", batch=10)[0]
    assert (r.metric, r.real, r.fake) == ("fid", 20, 20) and np.isfinite(r.value) and r.value > 0
    every = evaluate(["fid"], heads, motion="demo", image="demo", fid_frames="all", device="cpu", batch=40)[0]
    assert (every.real, every.fake) == (120, 120)


def test_a_folder_of_fakes_is_scored_like_the_data(heads, tmp_path):
    fakes = write_dataset(tmp_path / "fakes", videos=4, frames=16, size=16, seed=3)
    r = evaluate(["fvd16"], heads, fake=fakes, videos=4, device="cpu", batch=4, frame_size=16)[0]
    assert (r.real, r.fake) == (4, 4) and r.value > 0
    itself = evaluate(["fvd16"], fakes, fake=fakes, videos=4, device="cpu", batch=4, frame_size=16)[0]
    assert abs(itself.value) < 1e-6  # 16-frame videos: the same clips on both sides


def test_clear_errors(heads, tmp_path, isolated_store):
    with pytest.raises(MocohdError, match="no such dataset folder"):
        fvd16(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MocohdError, match="empty"):
        fvd16(tmp_path / "empty")
    short = write_dataset(tmp_path / "short", videos=2, frames=10, size=16)
    with pytest.raises(MocohdError, match="no video has the 16 frames fvd16 needs \\(2 too short\\)"):
        fvd16(short)
    one = write_dataset(tmp_path / "one", videos=1, frames=20, size=16)
    with pytest.raises(MocohdError, match="1 real clip for fvd16; a covariance needs at least 2"):
        fvd16(one)
    with pytest.raises(UsageError, match="unknown metric 'fvd17'"):
        evaluate(["fvd17"], heads, motion="demo", image="demo")
    with pytest.raises(UsageError, match="videos must be in 1..1099511627776, got 0"):
        fvd16(heads, videos=0)
    with pytest.raises(UsageError, match="not both"):
        evaluate(["fvd16"], heads, motion="demo", image="demo", fake=heads)
    # the detector: missing, then damaged
    (isolated_store / "i3d" / "i3d.safetensors").unlink()
    with pytest.raises(MocohdError, match="not in the store: run `mocohd fetch i3d`"):
        fvd16(heads)
    with pytest.raises(MocohdError, match="download https://github.com/mseitzer/pytorch-fid/.*mocohd import FILE"):
        evaluate(["fid"], heads, motion="demo", image="demo", device="cpu")
    path = store_detector("i3d")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(MocohdError, match="i3d.safetensors"):
        fvd16(heads)


def test_cli_eval_table_json_and_one_line_errors(capsys, heads, tmp_path):
    out_json = tmp_path / "r.json"
    code, out, err = run(
        capsys,
        "eval",
        "--data",
        str(heads),
        "--motion",
        "demo",
        "--videos",
        "4",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--json",
        str(out_json),
    )
    assert code == 0, err
    assert "fvd16" in out and "computed" in out and f"wrote {out_json}" in out
    saved = json.loads(out_json.read_text())
    assert saved[0]["metric"] == "fvd16" and saved[0]["real"] == 4 and saved[0]["fake"] == 4
    code, out, _ = run(
        capsys, "eval", "--data", str(heads), "--motion", "demo", "--videos", "4", "--batch", "4", "--device", "cpu"
    )
    assert code == 0 and "cached" in out and f"{saved[0]['value']:.2f}" in out
    code, _, err = run(capsys, "eval", "--data", str(heads))
    assert code == 2 and "give --motion" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "eval", "--data", str(heads), "--motion", "demo", "--metric", "fvd17")
    assert code == 2 and "unknown metric 'fvd17'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "eval", "--data", str(tmp_path / "nowhere"), "--motion", "demo")
    assert code == 1 and "no such dataset folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "eval", "--data", str(heads), "--motion", "demo", "--json", str(tmp_path))
    assert code == 2 and "is a folder" in err


def _torchrun_eval(tmp_path, *args) -> dict:
    out_json = tmp_path / "two.json"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "mocohd_cli",
        "eval",
        *args,
        "--device",
        "cpu",
        "--json",
        str(out_json),
    ]
    p = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=ROOT, timeout=300
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("fvd16") == 1  # one writer
    return json.loads(out_json.read_text())[0]


@pytest.mark.usefixtures("one_thread")  # tiny renders and detectors (tests/conftest.py)
def test_two_process_eval_equals_one_process(heads, tmp_path):
    """torchrun with 2 gloo processes: each embeds (and renders) half of the videos and the
    statistics are merged. Videos read from folders give the one-process number to float
    rounding (convolutions over 2 clips instead of 4, 1 thread instead of 2: 5e-7 relative seen
    on an FVD of 0.1); rendered videos to 1e-4, since a frame rendered in another batch may also
    round a pixel to the other uint8 value (5e-6 relative seen)."""
    fakes = write_dataset(tmp_path / "fakes", videos=4, frames=16, size=16, seed=3)
    one = evaluate(["fvd16"], heads, fake=fakes, videos=4, device="cpu", batch=4, frame_size=16, cache=False)[0]
    two = _torchrun_eval(
        tmp_path, "--data", str(heads), "--fake", str(fakes), "--videos", "4", "--batch", "4", "--frame-size", "16"
    )
    assert (two["real"], two["fake"]) == (4, 4)
    assert two["value"] == pytest.approx(one.value, rel=1e-5)
    one = fvd16(heads, cache=False)
    two = _torchrun_eval(tmp_path, "--data", str(heads), "--motion", "demo", "--videos", "4", "--batch", "4")
    assert (two["real"], two["fake"]) == (4, 4)
    assert two["value"] == pytest.approx(one.value, rel=1e-4)


@pytest.mark.usefixtures("one_thread")  # tiny renders and detectors (tests/conftest.py)
def test_training_evaluates_at_its_checkpoints_and_eval_appends_to_the_run(capsys, heads, tmp_path):
    G = randomized_generator(tiny_config(16))
    gpath = tmp_path / "g.safetensors"
    canonical.save_model(gpath, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
    pca_for(str(gpath), samples=1000, batch=500)
    events = []
    base = dict(
        data=str(heads),
        image=str(gpath),
        name="evald",
        steps=2,
        batch=2,
        frames=4,
        h_dim=16,
        dv_channels=4,
        di_channels=4,
        proj_dim=8,
        queue=8,
        workers=0,
        pca_samples=1000,
        sample_every=1000,
        log_every=1,
        device="cpu",
        eval_every=1,
        eval_videos=3,
    )
    train(TrainConfig(**base), on_event=lambda k, i: events.append((k, i)))
    evals = [i for k, i in events if k == "eval"]
    assert [e["step"] for e in evals] == [1, 2] and all(np.isfinite(e["values"]["fvd16"]) for e in evals)
    lines = [json.loads(x) for x in (isolated_home() / "runs" / "evald" / "metrics.jsonl").read_text().splitlines()]
    logged = [x for x in lines if "eval" in x]
    assert [x["step"] for x in logged] == [1, 2] and logged[1]["eval"]["fvd16"] == evals[1]["values"]["fvd16"]
    # the exported motion model is the step-2 one: mocohd eval gives the same number and appends it to the run
    code, out, err = run(
        capsys,
        "eval",
        "--data",
        str(heads),
        "--motion",
        "evald",
        "--image",
        str(gpath),
        "--videos",
        "3",
        "--batch",
        "8",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "cached" in out and "metrics.jsonl" in out
    last = json.loads((isolated_home() / "runs" / "evald" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["eval"]["fvd16"] == pytest.approx(evals[1]["values"]["fvd16"], rel=1e-6)
    # too short for fvd16, or no detector: refused before the first step
    short = write_dataset(tmp_path / "short", videos=3, frames=12, size=16)
    with pytest.raises(MocohdError, match="no video has the 16 frames fvd16 needs"):
        train(TrainConfig(**{**base, "data": str(short), "name": "short"}))
    (isolated_home() / "i3d" / "i3d.safetensors").unlink()
    with pytest.raises(MocohdError, match="mocohd fetch i3d"):
        train(TrainConfig(**{**base, "name": "nodet"}))
    assert not (isolated_home() / "runs" / "nodet" / "checkpoint.pt").exists()


def isolated_home() -> Path:
    return Path(os.environ["MOCOHD_HOME"])


def _grey_alpha_videos(folder: Path, videos: int, frames: int, size: int = 16) -> Path:
    """Frame folders of grey+alpha (LA) PNGs: a moving opaque band over a transparent background."""
    from PIL import Image

    for v in range(videos):
        (folder / f"v{v}").mkdir(parents=True)
        for t in range(frames):
            a = np.zeros((size, size, 2), np.uint8)
            a[:, (t + v) % size] = (40 * v, 255)
            Image.fromarray(a, "LA").save(folder / f"v{v}" / f"{t}.png")
    return folder


def test_grey_alpha_frames_evaluate(tmp_path):
    """LA frames once gave 2-channel clips that crashed the detector."""
    store_detector("i3d")
    la = _grey_alpha_videos(tmp_path / "la", 3, 16)
    fakes = write_dataset(tmp_path / "fakes", videos=3, frames=16, size=16, seed=3)
    r = evaluate(["fvd16"], la, fake=fakes, videos=3, device="cpu", batch=4)[0]
    assert (r.real, r.fake) == (3, 3) and np.isfinite(r.value)


@pytest.mark.usefixtures("one_thread")  # tiny renders and detectors (tests/conftest.py)
def test_a_changed_dataset_never_meets_its_old_statistics(capsys, heads, tmp_path):
    """Videos removed and blacked out: the clip cache is refreshed (said in one line), so the
    cached real statistics (keyed by the cache's index) are not those of the old data."""
    import shutil

    fakes = write_dataset(tmp_path / "fakes", videos=4, frames=16, size=16, seed=3)
    first = evaluate(["fvd16"], heads, fake=fakes, videos=4, device="cpu", batch=4)[0]
    shutil.rmtree(heads / "video_0005")
    for p in (heads / "video_0000").iterdir():
        iio.imwrite(p, np.zeros((16, 16, 3), np.uint8))
    out_json = tmp_path / "r.json"
    code, out, err = run(
        capsys,
        "eval",
        "--data",
        str(heads),
        "--fake",
        str(fakes),
        "--videos",
        "4",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--json",
        str(out_json),
    )
    assert code == 0, err
    again = json.loads(out_json.read_text())[0]
    assert not again["real_cached"] and again["real_videos"] == 5 and again["value"] != first.value
    assert f"{heads}: clip cache refreshed: 1 video changed, 1 removed" in err


def test_fakes_are_decoded_into_a_scratch_folder_that_goes_away(heads, tmp_path, isolated_store, monkeypatch):
    """Each `eval --fake` decodes the folder again into a scratch folder removed at the end (after
    an error or Ctrl-C too), and its errors name the user's folder, never the scratch one."""
    short = write_dataset(tmp_path / "short", videos=2, frames=10, size=16)
    with pytest.raises(MocohdError) as e:
        evaluate(["fvd16"], heads, fake=short, videos=4, device="cpu", batch=4, frame_size=16)
    assert str(e.value) == f"{short}: no video has the 16 frames fvd16 needs (2 too short)"
    data = isolated_store / "data"
    assert [p.name.split("-")[:2] for p in data.iterdir()] == [["heads", "16px"]]  # the dataset's cache only
    fakes = write_dataset(tmp_path / "fakes", videos=4, frames=16, size=16, seed=3)
    r = evaluate(["fvd16"], heads, fake=fakes, videos=4, device="cpu", batch=4)[0]
    assert np.isfinite(r.value)
    assert [p.name.split("-")[:2] for p in data.iterdir()] == [["heads", "16px"]]
    from mocohd_cli.metrics import evaluate as ev

    monkeypatch.setattr(ev, "embed", lambda det, clips, **kw: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        evaluate(["fvd16"], heads, fake=fakes, videos=4, device="cpu", batch=4, cache=False)
    assert [p.name.split("-")[:2] for p in data.iterdir()] == [["heads", "16px"]]


def test_score_of_a_folder_of_fakes_keeps_no_decoded_copy(heads, tmp_path, isolated_store):
    """The library's ``score`` decodes a folder of fakes into a scratch folder too (the real folder's
    clip cache stays, for the next score)."""
    fakes = write_dataset(tmp_path / "fakes", videos=4, frames=16, size=16, seed=3)
    assert np.isfinite(score("fvd16", heads, fakes, n=4, batch=4, frame_size=16))
    assert [p.name.split("-")[:2] for p in (isolated_store / "data").iterdir()] == [["heads", "16px"]]


def test_scratch_folders_of_killed_evaluations_are_swept(isolated_store):
    """A SIGKILLed `eval --fake` leaves its scratch folder: the next evaluation removes those of this
    machine's processes that are gone, and keeps a live one's and another machine's."""
    import subprocess
    import sys

    from mocohd_cli.distributed import Dist
    from mocohd_cli.metrics import evaluate as ev

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(gone.stdout), os.getppid()
    data = isolated_store / "data"
    here = f"{ev.SCRATCH_PREFIX}{ev._host()}-"
    left = {
        name: data / name
        for name in (f"{here}{dead_pid}-abc", f"{here}{live_pid}-def", f"{ev.SCRATCH_PREFIX}otherhost-{dead_pid}-ghi")
    }
    for folder in left.values():
        folder.mkdir(parents=True)
        (folder / "000000.safetensors").write_bytes(b"decoded frames")
    new = ev.scratch_folder(Dist(device="cpu"))
    assert new.is_dir() and new.name.startswith(f"{here}{os.getpid()}-")
    assert sorted(p.name for p in data.iterdir()) == sorted([new.name, *list(left)[1:]])


@pytest.mark.usefixtures("one_thread")  # tiny renders and detectors (tests/conftest.py)
def test_fakes_are_compared_at_their_own_size(capsys, heads, tmp_path):
    """A folder of 16 px fakes is compared at 16 px, not upscaled to 256 (said under the table);
    --frame-size wins; fakes of several sizes fall back to 256."""
    fakes = write_dataset(tmp_path / "fakes", videos=4, frames=16, size=16, seed=3)
    code, out, err = run(
        capsys, "eval", "--data", str(heads), "--fake", str(fakes), "--videos", "4", "--batch", "4", "--device", "cpu"
    )
    assert code == 0, err
    assert "frames compared at 16 px" in out
    assert evaluate(["fvd16"], heads, fake=fakes, videos=4, device="cpu", batch=4, frame_size=8)[0].frame_size == 8
    write_dataset(tmp_path / "fakes", videos=5, frames=16, size=8, seed=4)  # a fifth video, at 8 px
    assert evaluate(["fvd16"], heads, fake=fakes, videos=4, device="cpu", batch=4)[0].frame_size == 256


# ---------------------------------------------------------------- runs, absurd numbers, --json, --fake


def _motion_of_run(name: str, run: object, M=None) -> Path:
    """The demo motion model stored as ``name``, its metadata naming the training run ``run`` (the weights
    hash does not cover it: anyone can write any run there)."""
    M = M if M is not None else load_motion("demo")
    store.kind_dir("motion", create=True)
    path = store.store_path("motion", name)
    save_motion(path, M, image=M.image, source={"format": "mocohd-train", "run": run, "step": 2})
    return path


def _run_folder(name: str, M=None, exported: str | None = None) -> Path:
    """A training run folder of the store: a metrics.jsonl of one line and a checkpoint holding ``M``'s
    weights (a new random model's by default: not the demo's), as `mocohd train` writes them."""
    folder = store.kind_dir("runs", create=True) / name
    folder.mkdir()
    (folder / "metrics.jsonl").write_text('{"step": 1}\n')
    if M is None:
        torch.manual_seed(1)
        demo = load_motion("demo")
        M = MotionGenerator(demo.cfg, demo.pca_components, demo.pca_stdev)
    torch.save({"version": 1, "step": 2, "gan": {"M": M.state_dict()}, "exported": exported}, folder / "checkpoint.pt")
    return folder


@pytest.mark.usefixtures("one_thread")  # tiny renders and detectors (tests/conftest.py)
def test_eval_appends_only_to_the_run_whose_checkpoint_made_the_model(capsys, heads, tmp_path):
    """The run is named in the motion file's metadata, which its weights hash does
    not cover; eval appends only to a plain run name of the store whose checkpoint holds these weights."""
    # a stored model whose run's checkpoint holds other weights: not appended, and said in one line
    _motion_of_run("mine", "mine")
    other = _run_folder("mine")
    code, out, err = run(
        capsys, "eval", "--data", str(heads), "--motion", "mine", "--videos", "4", "--batch", "4", "--device", "cpu"
    )
    assert code == 0, err
    assert "appended" not in out and (other / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert [x for x in err.splitlines() if x.startswith("note:")] == [
        x for x in err.splitlines() if "not appended to the run 'mine'" in x and "does not hold" in x
    ]
    # the run that made it (its checkpoint holds the weights): appended
    shutil.rmtree(other)
    made = _run_folder("mine", load_motion("mine"))
    code, out, err = run(
        capsys, "eval", "--data", str(heads), "--motion", "mine", "--videos", "4", "--batch", "4", "--device", "cpu"
    )
    assert code == 0, err
    assert f"appended to {made / 'metrics.jsonl'}" in out and "note:" not in err
    last = json.loads((made / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["motion"] == "mine" and "fvd16" in last["eval"]


def test_run_of_never_follows_a_path_and_knows_a_kept_step(tmp_path, isolated_store):
    """Crafted run values (absolute, '..', separators, other types) are never followed;
    a --keep-best run's checkpoint records the weights it exported (an earlier step's)."""
    from mocohd_cli.metrics.evaluate import run_weights

    outside = tmp_path / "victim"
    outside.mkdir()
    (outside / "metrics.jsonl").write_text("mine\n")
    (isolated_store / "runs" / "deep").mkdir(parents=True)
    for run_name in (
        str(outside),
        "../../victim",
        "..",
        "deep/../../../victim",
        "a/b",
        5,
        ["victim"],
        {"a": 1},
        "x" * 5000,
    ):
        _motion_of_run("crafted", run_name)
        notes = []
        assert run_of("crafted", note=notes.append) is None, run_name
        assert len(notes) == 1 and "no run name" in notes[0] and len(notes[0]) < 300, notes
    assert (outside / "metrics.jsonl").read_text() == "mine\n"
    # a plain name whose folder is missing: silently nothing; the demo, whose run 'heads' the user has too
    # (another run of that name): not appended, and no note (a shipped model's run is its authors')
    _motion_of_run("gone", "gone")
    notes = []
    assert run_of("gone", note=notes.append) is None and notes == []
    _run_folder("heads")
    assert run_of("demo", note=notes.append) is None and notes == []
    # --keep-best: the checkpoint holds a later step, and records the sha256 of the export it kept
    sha = canonical.read_header(_motion_of_run("kept", "kept")).weights_sha256
    folder = _run_folder("kept", exported=sha)
    assert run_of("kept") == folder and sha in run_weights(folder)
    (folder / "checkpoint.pt").write_bytes(b"damaged")
    assert run_of("kept", note=notes.append) is None and "does not hold" in notes[0]


def test_absurd_numbers_are_one_line_usage_errors(capsys, heads, isolated_store):
    """No exception names, the valid range in one line, exit 2, before any work."""
    cases = [
        (["--videos", str(10**20)], "videos must be in 1..1099511627776, got 100000000000000000000"),
        (["--videos", str(2**63 - 1)], "videos must be in 1..1099511627776"),
        (["--metric", "fid", "--fid-frames", str(10**20)], "fid_frames must be in 1..1099511627776"),
        (["--seed", str(2**40)], "seed must be in 0..1099511627775, got 1099511627776"),
        (["--seed", "-1"], "seed must be in 0..1099511627775, got -1"),
        (["--frame-size", "100000"], "frame_size must be in 8..1024"),
        (["--batch", str(10**20)], "batch must be in 1..1099511627776"),
    ]
    for args, message in cases:
        code, out, err = run(capsys, "eval", "--data", str(heads), "--motion", "demo", "--device", "cpu", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
        assert "Error" not in err and "internal" not in err
    assert not (isolated_store / "data").exists()  # nothing prepared, no empty cache folder


def test_memory_does_not_grow_with_videos(heads, monkeypatch):
    """The fakes' indices and the clips of --repeat are never listed, so memory stays
    flat whatever --videos is; the real statistics' cache key is the same as when plans were lists."""
    from mocohd_cli.metrics import evaluate as ev

    seen = []

    class Enough(Exception):
        pass

    def spy(M, G, indices, *a, **kw):
        seen.append((type(indices), sys.getsizeof(indices), len(indices), indices[-1]))
        raise Enough

    monkeypatch.setattr(ev, "fake_videos", spy)
    with pytest.raises(Enough):
        fvd16(heads, videos=10**6)
    assert seen == [(range, sys.getsizeof(range(1)), 10**6, 10**6 - 1)]
    clips = sample_real_clips(load_videos(heads), "fvd16", n=10**6, seed=3, repeat=True)
    assert clips.count == 10**6 and sys.getsizeof(clips.plan) < 1000
    assert clips.plan[7] == (1, clips.plan[7][1]) and clips.plan[7] == clips.plan[7]  # video 7 % 6, computed again
    few = sample_real_clips(load_videos(heads), "fvd16", n=10, seed=3, repeat=True)
    assert list(few.plan) == list(clips.plan[:10]) and list(few.share(1, 2).plan) == list(few.plan)[1::2]
    assert ev._plan_digest(few.plan) == hashlib.sha256(json.dumps(list(few.plan)).encode()).hexdigest()[:16]


def load_videos(folder) -> list[torch.Tensor]:
    """A dataset folder of frame folders as uint8 videos [T, H, W, C] in memory."""
    return [
        torch.from_numpy(np.stack([iio.imread(f) for f in sorted(v.glob("*.png"))]))
        for v in sorted(Path(folder).iterdir())
    ]


@pytest.mark.usefixtures("one_thread")  # tiny renders and detectors (tests/conftest.py)
def test_json_is_checked_before_any_work_and_written_through_a_link(capsys, heads, tmp_path, monkeypatch):
    """An unwritable --json fails before the evaluation; a link stays a link."""
    from mocohd_cli.cli import eval_command

    real = eval_command.evaluate_videos
    monkeypatch.setattr(
        eval_command, "evaluate_videos", lambda *a, **kw: pytest.fail("evaluated before checking --json")
    )
    long_name = tmp_path / ("x" * 300 + ".json")  # no file system takes such a name, even for root
    code, _, err = run(capsys, "eval", "--data", str(heads), "--motion", "demo", "--json", str(long_name))
    assert code == 1 and "cannot write it" in err and len(err.strip().splitlines()) == 1
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        code, _, err = run(
            capsys, "eval", "--data", str(heads), "--motion", "demo", "--json", str(tmp_path / "ro" / "r.json")
        )
        assert code == 1 and "cannot write it" in err
    code, _, err = run(capsys, "eval", "--data", str(heads), "--motion", "demo", "--json", "/dev/null")
    assert code == 2 and "not a regular file" in err
    assert not list(tmp_path.glob(".*probe*"))
    monkeypatch.setattr(eval_command, "evaluate_videos", real)
    target = tmp_path / "kept" / "r.json"
    target.parent.mkdir()
    target.write_text("old")
    (tmp_path / "link.json").symlink_to(target)
    code, out, err = run(
        capsys,
        "eval",
        "--data",
        str(heads),
        "--motion",
        "demo",
        "--videos",
        "4",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--json",
        str(tmp_path / "link.json"),
    )
    assert code == 0, err
    assert (tmp_path / "link.json").is_symlink() and json.loads(target.read_text())[0]["metric"] == "fvd16"
    assert f"wrote {tmp_path / 'link.json'} (through the link, to {os.path.realpath(target)})" in out


@pytest.mark.usefixtures("one_thread")  # tiny renders and detectors (tests/conftest.py)
def test_json_is_written_before_the_table_is_printed(heads, tmp_path):
    """With stdout closed early (`| head -1`), the JSON file is there all the same."""
    fakes = write_dataset(tmp_path / "fakes", videos=4, frames=16, size=16, seed=3)
    out_json = tmp_path / "r.json"
    cmd = [
        sys.executable,
        "-m",
        "mocohd_cli",
        "eval",
        "--data",
        str(heads),
        "--fake",
        str(fakes),
        "--videos",
        "4",
        "--batch",
        "4",
        "--frame-size",
        "16",
        "--device",
        "cpu",
        "--json",
        str(out_json),
    ]
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    p.stdout.close()  # the reader is gone before the first line
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert "Traceback" not in err
    assert json.loads(out_json.read_text())[0]["fake"] == 4, err


@pytest.mark.usefixtures("one_thread")  # tiny renders and detectors (tests/conftest.py)
def test_a_folder_of_fakes_refuses_rendering_options_and_counts_its_short_videos(capsys, heads, tmp_path):
    """--truncation means nothing for a folder of fakes (refused); fakes too short
    for the metric are counted in the skipped column and the JSON."""
    fakes = write_dataset(tmp_path / "fakes", videos=4, frames=16, size=16, seed=3)
    write_dataset(fakes, videos=6, frames=10, size=16, seed=4)  # two more, too short for fvd16
    code, _, err = run(capsys, "eval", "--data", str(heads), "--fake", str(fakes), "--truncation", "0.7")
    assert code == 2 and "truncation applies only to fakes rendered here" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UsageError, match="noise applies only"):
        evaluate(["fvd16"], heads, fake=fakes, noise="random")
    code, out, err = run(
        capsys,
        "eval",
        "--data",
        str(heads),
        "--fake",
        str(fakes),
        "--videos",
        "4",
        "--batch",
        "4",
        "--frame-size",
        "16",
        "--device",
        "cpu",
        "--json",
        str(tmp_path / "r.json"),
    )
    assert code == 0, err
    assert "0 real, 2 fake" in out
    saved = json.loads((tmp_path / "r.json").read_text())[0]
    assert (saved["skipped"], saved["fake_skipped"], saved["fake"]) == (0, 2, 4)
    assert fvd16(heads).fake_skipped is None  # rendered fakes are never too short
