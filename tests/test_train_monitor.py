"""Training's motion monitor (``--monitor``) and ``--keep-best`` at tiny sizes: the records at
every checkpoint, training unchanged by them, the exported best checkpoint, resume."""

import json
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mocohd_cli import load_motion, store
from mocohd_cli.errors import UsageError
from mocohd_cli.formats import canonical
from mocohd_cli.metrics.evaluate import run_of
from mocohd_cli.train import TrainConfig, load_checkpoint, monitor, motion_trainer, train
from mocohd_cli.train.monitor import KeepBest, Monitor, distance

from . import test_train
from .conftest import run

pytestmark = pytest.mark.usefixtures("one_thread")
setup, tiny = test_train.setup, test_train.tiny  # the tiny generator and videos of test_train, its config


@pytest.fixture(autouse=True)
def few_inversion_steps(monkeypatch):
    monkeypatch.setattr(monitor, "INVERT_STEPS", 10)


def _runs(name) -> Path:
    return Path(os.environ["MOCOHD_HOME"]) / "runs" / name


def _records(name) -> list[dict]:
    lines = [json.loads(x) for x in (_runs(name) / "metrics.jsonl").read_text().splitlines()]
    return [x for x in lines if "monitor" in x]


def _exported_step(name) -> int:
    return canonical.read_header(store.store_path("motion", name)).source["step"]


# ---------------------------------------------------------------------------- the distance


def test_distance_is_zero_for_identical_statistics_and_adds_its_terms():
    motion = {"shares": [0.4, 0.2], "on_span": 0.6, "periods": [8.0, 5.0]}
    real = {"change": 0.05, "drift": 0.2, "motion": motion}
    assert distance(real, real) == 0.0
    assert distance({"change": 0.05, "drift": 0.2}, real) == 0.0  # no fake motion: pixel terms only
    assert distance({"change": 0.1, "drift": 0.05, "motion": motion}, real) == pytest.approx(math.log(2) + math.log(4))
    # shares as a distribution over the directions: the same split at half the energy on the span costs nothing
    assert distance({**real, "motion": {"shares": [0.2, 0.1], "on_span": 0.3, "periods": [8.0, 5.0]}}, real) == 0.0
    swapped = {**real, "motion": {"shares": [0.2, 0.4], "on_span": 0.6, "periods": [8.0, 5.0]}}
    assert distance(swapped, real) == pytest.approx(2 * (2 / 3 - 1 / 3))
    slower = {**real, "motion": {**motion, "periods": [16.0, 5.0]}}
    assert distance(slower, real) == pytest.approx(2 / 3 * math.log(2))
    assert distance({"change": 0.0, "drift": 0.2}, real) > 10  # a still model: far, and finite


def test_keep_best_file_persists_and_restarts_on_another_criterion(tmp_path):
    path, exported, notes = tmp_path / "best", [], []
    keep = KeepBest(path, "monitor distance", fresh=True)
    assert [keep.offer(s, v, exported.append) for s, v in ((1, 0.5), (2, 0.7), (3, 0.2), (4, float("nan")))] == [
        True,
        False,
        True,
        False,
    ]
    assert exported == [1, 3] and json.loads(path.read_text()) == {
        "step": 3,
        "criterion": "monitor distance",
        "value": 0.2,
    }
    assert KeepBest(path, "monitor distance", fresh=False).best["step"] == 3  # a resume goes on from it
    assert KeepBest(path, "fvd16", fresh=False, note=notes.append).best is None and "compares fvd16" in notes[0]
    KeepBest(path, "monitor distance", fresh=True)
    assert not path.exists()  # a fresh start forgets it


# ---------------------------------------------------------------------------- in training


@pytest.mark.parametrize("domain", ["cross", "in"])
def test_monitor_records_every_checkpoint(setup, domain):
    events = []
    cfg = tiny(setup, name=f"mon-{domain}", steps=3, save_every=2, domain=domain, monitor=True, monitor_clips=2)
    train(cfg, on_event=lambda k, i: events.append((k, i)))
    records = _records(cfg.name)
    assert [x["step"] for x in records] == [2, 3]  # every checkpoint, the last one too
    seen = [i for k, i in events if k == "monitor"]
    assert [e["step"] for e in seen] == [2, 3] and seen[1]["values"] == records[1]["monitor"]
    for x in records:
        m = x["monitor"]
        assert math.isfinite(m["distance"]) and m["distance"] > 0
        assert 0 < m["change"] <= 2 and 0 < m["drift"] <= 2 and m["seconds"] < 5
        assert 0 < m["real"]["change"] <= 2 and 0 < m["real"]["drift"] <= 2  # the bars move
        motion = m["motion"]
        assert len(motion["shares"]) == len(motion["periods"]) == 8  # K = min(8, n_pca)
        assert sum(motion["shares"]) == pytest.approx(motion["on_span"], abs=1e-5) and 0 < motion["on_span"] <= 1
        assert all(p >= 2 - 1e-6 for p in motion["periods"]) and motion["step"] > 0  # nothing faster than 2 frames
        assert m["distance"] == pytest.approx(distance(m, m["real"]), rel=1e-4)  # the motion stats are rounded
    real = records[0]["monitor"]["real"]
    if domain == "in":  # the real clips' latent motion, inverted once and cached
        assert len(real["motion"]["shares"]) == 8 and (_runs(cfg.name) / "monitor_real.json").is_file()
        assert any("inverted 2 real clips" in i["text"] for k, i in events if k == "note")
    else:
        assert "motion" not in real and not (_runs(cfg.name) / "monitor_real.json").exists()
    if domain == "in":  # a resume reads the cache: no second inversion, the same real statistics
        events.clear()
        train(
            tiny(setup, name=cfg.name, steps=4, save_every=2, domain=domain),
            resume=True,
            on_event=lambda k, i: events.append((k, i)),
        )
        assert not any("inverted" in i["text"] for k, i in events if k == "note")
        assert [x["step"] for x in _records(cfg.name)] == [2, 3, 4] and _records(cfg.name)[2]["monitor"]["real"] == real


def test_the_monitors_inversion_says_what_it_does_and_shows_progress(setup, capsys, monkeypatch):
    """Regression: --monitor-clips inverted the real clips without a word (421 s of silence for one clip of
    4 frames at 64 px). A note says what it does, 'invert' events count its steps (frame by frame, the
    clips together), shown as plain lines in a pipe (a live bar on a terminal), and a note its cost."""
    events = []
    train(tiny(setup, name="inv", steps=1, domain="in", monitor_clips=2), on_event=lambda k, i: events.append((k, i)))
    steps = [i for k, i in events if k == "invert"]
    assert [i["done"] for i in steps] == list(range(1, 41)) and {i["total"] for i in steps} == {40}  # 4 frames x 10
    kinds = [k for k, _ in events]
    assert kinds.index("invert") < kinds.index("start")  # before training
    notes = [i["text"] for k, i in events if k == "note"]
    said = [n for n in notes if n.startswith("monitor: inverting")]
    assert said == [
        "monitor: inverting 2 real clips (4 frames each) into w, once, before training: 10 steps per frame "
        "at 16 px, the clips together (40 steps)"
    ]
    assert notes.index(said[0]) < notes.index(next(n for n in notes if n.startswith("monitor: inverted 2 real clips")))
    assert any(
        re.search(r"inverted 2 real clips into w in [\d.]+ s \([\d.]+ s per frame; their motion", n) for n in notes
    )
    code, out, err = run(capsys, *test_train._cli_args(setup, "inv-cli", 1, "--domain", "in", "--monitor-clips", "1"))
    assert code == 0, err
    lines = err.splitlines()
    start = lines.index(
        "monitor: inverting 1 real clip (4 frames each) into w, once, before training: 10 steps per "
        "frame at 16 px, the clips together (40 steps)"
    )
    shown = [x for x in lines if x.startswith("monitor: inverting: ")]
    assert shown and re.fullmatch(r"monitor: inverting: 40/40 steps, [\d.]+ steps/s", shown[-1])
    assert start < lines.index(shown[0]) and any(x.startswith("monitor: inverted 1 real clip into w in") for x in lines)
    # on a terminal: the live bar shows the inversion, then training (its own rate and time)
    import io

    from rich.console import Console

    from mocohd_cli.cli import progress

    screen = io.StringIO()
    monkeypatch.setattr(  # the console the progress display draws on
        progress, "err", Console(file=screen, force_terminal=True, no_color=True, highlight=False, width=250)
    )
    code, out, _ = run(capsys, *test_train._cli_args(setup, "inv-live", 2, "--domain", "in", "--monitor-clips", "1"))
    assert code == 0 and "finished at step 2/2" in out, screen.getvalue()[-2000:]
    assert "monitor: inverting 1 real clip" in screen.getvalue() and " 2/2 " in screen.getvalue()


def test_the_monitor_does_not_change_training(setup):
    """The same weights, optimiser and random streams with the monitor (and its in-domain inversion,
    --keep-best, a resume in the middle) as without it."""
    train(tiny(setup, name="plain", steps=4, save_every=2, domain="in", monitor=False))
    watched = dict(domain="in", monitor=True, keep_best=True, monitor_clips=1)
    train(tiny(setup, name="watched", steps=2, save_every=1, **watched))
    train(tiny(setup, name="watched", steps=4, save_every=1, **watched), resume=True)
    a, b = load_checkpoint(_runs("plain") / "checkpoint.pt"), load_checkpoint(_runs("watched") / "checkpoint.pt")
    assert a["step"] == b["step"] == 4 and torch.equal(a["rng"][0], b["rng"][0])
    for part in ("M", "D_V", "D_I"):
        assert a["gan"][part].keys() == b["gan"][part].keys()
        assert all(torch.equal(a["gan"][part][k], b["gan"][part][k]) for k in a["gan"][part]), part
    opt_a, opt_b = a["gan"]["opt_M"]["state"], b["gan"]["opt_M"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg"], opt_b[i]["exp_avg"]) for i in opt_a)
    assert len(_records("watched")) == 4 and not _records("plain")


def _scripted(monkeypatch, distances: dict[int, float]):
    """Monitor records whose distance is ``distances[step]`` (the rest measured as usual)."""
    real = Monitor.__call__
    monkeypatch.setattr(Monitor, "__call__", lambda self, step: {**real(self, step), "distance": distances[step]})


def _weights_at_checkpoints(name: str, into: dict):
    """An on_event that keeps the motion weights of every checkpoint (read back after it was written)."""

    def on_event(kind, info):
        if kind == "checkpoint":
            into[info["step"]] = load_checkpoint(_runs(name) / "checkpoint.pt")["gan"]["M"]

    return on_event


def test_keep_best_exports_the_closest_checkpoint_and_resumes(setup, monkeypatch, capsys):
    _scripted(monkeypatch, {1: 0.5, 2: 0.2, 3: 0.9, 4: 0.3, 5: 0.25, 6: 0.1})
    weights = {}
    r = train(
        tiny(setup, name="kb", steps=4, save_every=1, keep_best=True), on_event=_weights_at_checkpoints("kb", weights)
    )
    assert r.kept == {"step": 2, "criterion": "monitor distance", "value": 0.2}
    assert json.loads((r.run / "best").read_text()) == r.kept and _exported_step("kb") == 2
    exported = load_motion("kb").state_dict()
    assert all(torch.equal(exported[k], v) for k, v in weights[2].items() if k in exported)
    assert not all(torch.equal(exported[k], v) for k, v in weights[4].items() if k in exported)  # not the latest
    assert run_of("kb") == r.run  # `mocohd eval` appends to it: the step-4 checkpoint records the export it kept
    assert [x["monitor"]["distance"] for x in _records("kb")] == [0.5, 0.2, 0.9, 0.3]
    # a resume compares with the best so far (step 5's 0.25 is worse than 0.2), and says what it kept
    code, out, err = run(capsys, "train", "--name", "kb", "--resume", "--steps", "6")
    assert code == 0, err
    assert "kept step 6: monitor distance 0.1" in out and "kept step 6 as the best (monitor distance 0.1)" in err
    assert "kept step 5" not in err and "step 5: monitor 0.250 (change" in err
    assert _exported_step("kb") == 6


def test_keep_best_with_real_distances_and_without(setup):
    """Unscripted: the exported step is the recorded argmin; without --keep-best, the latest."""
    r = train(tiny(setup, name="auto", steps=4, save_every=1, keep_best=True, domain="in", monitor_clips=1, lr=0.05))
    distances = {x["step"]: x["monitor"]["distance"] for x in _records("auto")}
    best = min(distances, key=lambda s: (distances[s], s))
    assert r.kept["step"] == best == _exported_step("auto") and r.kept["value"] == distances[best]
    r = train(tiny(setup, name="auto", steps=5, keep_best=False), resume=True)  # turned off: the latest again
    assert r.kept is None and _exported_step("auto") == 5 and not (r.run / "best").exists()
    r = train(tiny(setup, name="latest", steps=3, save_every=1, monitor=True))
    assert r.kept is None and _exported_step("latest") == 3 and not (r.run / "best").exists()


def test_keep_best_by_fvd16_when_evaluating(setup, monkeypatch):
    fvd = iter([30.0, 10.0, 20.0])
    monkeypatch.setattr(motion_trainer, "load_detector", lambda *a, **k: None)
    monkeypatch.setattr(motion_trainer, "check_real", lambda *a, **k: None)
    monkeypatch.setattr(motion_trainer, "prepare_data", lambda *a, **k: None)
    monkeypatch.setattr(motion_trainer, "evaluate", lambda *a, **k: [SimpleNamespace(metric="fvd16", value=next(fvd))])
    notes = []
    r = train(
        tiny(setup, name="byfvd", steps=3, save_every=1, eval_every=1, keep_best=True),
        on_event=lambda k, i: k == "note" and notes.append(i["text"]),
    )
    assert r.kept == {"step": 2, "criterion": "fvd16", "value": 10.0} and _exported_step("byfvd") == 2
    assert "kept step 2 as the best (fvd16 10)" in notes and len(_records("byfvd")) == 3  # the monitor still runs


def test_monitor_settings(setup):
    with pytest.raises(UsageError, match=r"^monitor_clips \(--monitor-clips\) must be a whole number >= 0, got -1$"):
        TrainConfig(monitor_clips=-1)
    with pytest.raises(UsageError, match=r"^keep_best \(--keep-best\) must be True or False"):
        TrainConfig(keep_best="yes")
    train(tiny(setup, name="mut", steps=1, monitor=False))
    r = train(tiny(setup, name="mut", steps=2, monitor=True, monitor_clips=0, keep_best=True), resume=True)  # mutable
    assert r.kept["step"] == 2 and [x["step"] for x in _records("mut")] == [2]
