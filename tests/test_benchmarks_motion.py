"""The motion benchmarks run (tiny settings: a smoke test so that they cannot rot)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, tmp_path):
    env = {**os.environ, "MOCOHD_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_recovery_benchmark_multi_case(tmp_path):
    out = tmp_path / "curve.json"
    p = _run(
        "benchmarks/bench_motion_recovery.py",
        "--case",
        "multi",
        "--videos",
        "8",
        "--steps",
        "2",
        "--eval-every",
        "1",
        "--threads",
        "1",
        "--train",
        "g_steps=1",
        "--json",
        str(out),
        tmp_path=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert "real clips (16 frames)" in p.stdout and "per direction: shares" in p.stdout
    curve = json.loads(out.read_text())
    assert [r["step"] for r in curve["curve"]] == [0, 1, 2]
    assert abs(curve["real"]["periods"][0] - 5.0) < 0.1 and curve["args"]["train"] == ["g_steps=1"]
    assert len(curve["curve"][-1]["within"]) == 3 and "monitor" in curve["curve"][-1]  # training's monitor, recorded
    assert (
        _run(
            "benchmarks/bench_motion_recovery.py",
            "--case",
            "multi",
            "--periods",
            "1,2",
            "--steps",
            "1",
            tmp_path=tmp_path,
        ).returncode
        != 0
    )  # 2 periods for 3 directions: refused


def test_recovery_benchmark_averages_and_term_sensitivity(tmp_path):
    """--ema-half-life: a tiny half-life is the checkpoint itself, a huge one keeps the first
    checkpoint's weights. --term-sensitivity with a trained bank from that run (--keep): every
    variant printed, and movement added off the true directions costs more than the noise floor."""
    out = tmp_path / "curve.json"
    p = _run(
        "benchmarks/bench_motion_recovery.py",
        "--case",
        "multi",
        "--videos",
        "8",
        "--steps",
        "2",
        "--eval-every",
        "1",
        "--threads",
        "1",
        "--train",
        "g_steps=1",
        "--train",
        "oscillators=4",
        "--ema-half-life",
        "1e-9",
        "1e9",
        "--keep",
        "--json",
        str(out),
        tmp_path=tmp_path,
    )
    assert "work folder: " in p.stdout, p.stderr
    work = Path(p.stdout.split("work folder: ")[-1].strip())
    assert work.name.startswith("mocohd-recovery-")
    try:
        assert p.returncode == 0, p.stderr
        assert p.stdout.count("    EMA 1e-09: energy") == 2 and p.stdout.count("    EMA 1e+09: energy") == 2
        curve = json.loads(out.read_text())["curve"]
        first, last = curve[1], curve[2]
        assert all(0 <= last["parts"][k]["coherence"] <= 1 for k in ("LSTM alone", "bank alone"))
        tiny, huge = sorted(last["ema"], key=float)
        for key in ("energy", "share_error", "period_error", "within", "periods"):
            assert last["ema"][tiny][key] == last[key]
            assert last["ema"][huge][key] == first[key]
        assert last["energy"] != first["energy"]  # the two checkpoints differ, so the averages are told apart
        ck = str(work / "home" / "runs" / "recovery" / "checkpoint.pt")
        q = _run(
            "benchmarks/bench_motion_recovery.py",
            "--case",
            "multi",
            "--threads",
            "1",
            "--term-sensitivity",
            "4",
            "--pairs",
            "3",
            "--bank",
            ck,
            tmp_path=tmp_path,
        )
        # given the first frame, at a bandwidth far wider than the frames' distances: the pooled term
        wide = _run(
            "benchmarks/bench_motion_recovery.py",
            "--case",
            "multi",
            "--threads",
            "1",
            "--term-sensitivity",
            "4",
            "--pairs",
            "3",
            "--content",
            "1e4",
            "--bank",
            ck,
            tmp_path=tmp_path,
        )
        other = _run(
            "benchmarks/bench_motion_recovery.py",
            "--case",
            "multi",
            "--threads",
            "1",
            "--term-sensitivity",
            "4",
            "--pairs",
            "1",
            "--seed",
            "1",
            "--bank",
            ck,
            tmp_path=tmp_path,
        )
        assert (
            other.returncode == 1
            and other.stderr.strip().count("\n") == 0
            and "not a run with an oscillator bank on this generator" in other.stderr
        )
        missing = _run(
            "benchmarks/bench_motion_recovery.py",
            "--case",
            "multi",
            "--threads",
            "1",
            "--term-sensitivity",
            "4",
            "--pairs",
            "1",
            "--bank",
            str(tmp_path / "none.pt"),
            tmp_path=tmp_path,
        )
        assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0
        assert missing.stderr.startswith("--bank: ") and "unreadable checkpoint" in missing.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert q.returncode == 0, q.stderr
    terms = {
        line.split(": cross-spectrum term")[0]: float(line.split("term ")[1].split()[0])
        for line in q.stdout.splitlines()
        if "cross-spectrum term" in line
    }
    assert len(terms) == 5 and all(k.startswith("batch 4: ") for k in terms)
    assert "batch 4: the trained bank" in terms and "batch 4: the trained bank, cut to the true directions" in terms
    off = next(v for k, v in terms.items() if "+ directions" in k)
    assert off > terms["batch 4: the same kind"] + 1
    assert wide.returncode == 0, wide.stderr
    given = [
        float(line.split(") ")[1].split()[0])
        for line in wide.stdout.splitlines()
        if "given the first frame (bandwidth 10000)" in line
    ]
    assert given == pytest.approx(list(terms.values()), rel=1e-3, abs=1e-4)


def test_latent_ablation_runs(tmp_path):
    p = _run(
        "benchmarks/ablate_motion_latent.py",
        "--steps",
        "2",
        "--eval-every",
        "1",
        "--blocks",
        "4",
        "--batch",
        "4",
        tmp_path=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("\nstep ") == 2 and "coh" in p.stdout


def test_latent_ablation_with_an_oscillator_bank(tmp_path):
    p = _run(
        "benchmarks/ablate_motion_latent.py",
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--oscillators",
        "4",
        "--w-residual",
        "0",
        "--freeze",
        "osc_log_period",
        "--batch",
        "4",
        tmp_path=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert "oscillators (period: size)" in p.stdout and "3.00:" in p.stdout  # the frozen first period stays 3 frames


def test_pixel_effects_of_a_direction_repeated_are_identical(tmp_path):
    """The identifiability check: a direction listed twice has cosine 1 with itself and the same size."""
    p = _run(
        "benchmarks/bench_motion_recovery.py",
        "--case",
        "multi",
        "--dirs",
        "1,3,1",
        "--pixel-effects",
        "--threads",
        "1",
        tmp_path=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    sizes = [float(x) for x in lines[0].split("[")[-1].rstrip("]").split()]
    cos = [[float(x) for x in line.strip("[]").split()] for line in lines[2:5]]
    assert sizes[0] == sizes[2] > 0 and cos[0][2] == 1.0 and cos[0][0] == 1.0 and abs(cos[0][1]) < 0.9


def test_identifiability_known_answers(tmp_path):
    """With no direction besides the true ones there is no other movement: residual 1 every
    way. With one more direction, the residuals lie in [0, 1], and every comparison is printed."""

    def residuals(*extra):
        p = _run(
            "benchmarks/bench_motion_recovery.py",
            "--case",
            "single",
            "--identifiability",
            "--videos",
            "12",
            "--threads",
            "1",
            *extra,
            tmp_path=tmp_path,
        )
        assert p.returncode == 0, p.stderr
        rows = [line.strip().split(": ", 1) for line in p.stdout.splitlines()[1:]]
        return {how: [float(part.split()[-1]) for part in values.split(", ")] for how, values in rows}

    alone = residuals("--n-pca", "3", "--dirs", "0,1,2")
    assert list(alone) == ["pooled", "first-frame kernel 1", "first-frame kernel 0.5", "video by video"]
    assert all(v == [1.0] * 4 for v in alone.values())
    more = residuals("--n-pca", "4", "--dirs", "0,1,2")
    assert all(len(v) == 4 and all(0.0 <= x <= 1.0 for x in v) for v in more.values())
    assert min(min(v) for v in more.values()) < 1.0


def test_rotated_truth_at_90_degrees_is_the_partner_directions(tmp_path):
    """--rotate 90 turns directions 1, 3, 5 fully onto 0, 2, 4: the real clips measure as with
    --dirs 0,2,4; --rotate with a measurement-only mode is refused in one line."""

    def real_line(*extra):
        p = _run(
            "benchmarks/bench_motion_recovery.py",
            "--case",
            "multi",
            "--videos",
            "8",
            "--steps",
            "1",
            "--eval-every",
            "1",
            "--threads",
            "1",
            *extra,
            tmp_path=tmp_path,
        )
        assert p.returncode == 0, p.stderr
        return next(line for line in p.stdout.splitlines() if line.startswith("real clips")), p.stdout

    turned, out = real_line("--rotate", "90")
    assert "true movements turned 90 degrees from directions [1, 3, 5] toward [0, 2, 4]" in out
    assert turned == real_line("--dirs", "0,2,4")[0]
    assert turned != real_line()[0]
    p = _run("benchmarks/bench_motion_recovery.py", "--rotate", "30", "--identifiability", tmp_path=tmp_path)
    assert (
        p.returncode == 1 and p.stderr.strip().count("\n") == 0 and "--rotate applies to training runs only" in p.stderr
    )
    p = _run("benchmarks/bench_motion_recovery.py", "--term-sensitivity", "4", "--content", "0", tmp_path=tmp_path)
    assert p.returncode == 1 and p.stderr.strip().count("\n") == 0 and "--content: bandwidths must be > 0" in p.stderr
