"""benchmarks/gpu_check.py cannot rot: its CPU dry run (--device cpu --quick) runs every step
at tiny sizes and reports every section; asking for CUDA without a GPU fails in one line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
STEPS = [
    "machine",
    "tests",
    "peak",
    "stylegan2-lo",
    "stylegan2-hi",
    "biggan",
    "train-cross",
    "train-in",
    "render",
    "torchrun",
    "levers",
    "compile",
    "eval",
]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MOCOHD_TEST_DEVICE", "MOCOHD_DEBUG", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "out"
    p = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--device",
            "cpu",
            "--quick",
            "--out",
            str(out),
            "--wheels",
            str(out.parent / "no-wheels"),
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text()), p


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def test_every_step_runs_and_succeeds(dry_run):
    _, result, p = dry_run
    steps = {s["step"]: s for s in result["steps"]}
    assert list(steps) == STEPS
    bad = {k: (s["status"], s.get("note")) for k, s in steps.items() if s["status"] != "ok"}
    assert not bad, bad
    assert "13/13 steps ok" in p.stderr
    assert result["meta"]["quick"] and result["meta"]["device"] == "cpu"
    assert _number(result["meta"]["wall_s"]) and result["meta"]["wall_s"] < result["meta"]["budget_s"]


def test_every_section_has_numbers(dry_run):
    _, result, _ = dry_run
    sec = result["sections"]
    rows = [r for rows in sec.values() for r in rows]
    assert not [r for r in rows if r.get("error")], [r for r in rows if r.get("error")]

    (machine,) = sec["machine"]
    assert machine["torch"] == torch.__version__ and machine["cpus"] >= 1 and machine["mocohd"]

    (tests,) = sec["tests"]
    assert tests["passed"] >= 9 and tests["failed"] == tests["errors"] == 0 and tests["device"] == "cpu"

    assert {r["dtype"] for r in sec["peak"]} == {"fp32", "tf32", "bf16", "fp16"}
    assert all(_number(r["matmul_tflops"]) and _number(r["conv_tflops"]) for r in sec["peak"])

    for name, resolutions in (("stylegan2", {16, 32}), ("biggan", {32})):
        rs = sec[name]
        assert {r["resolution"] for r in rs} == resolutions
        assert len(rs) == len(resolutions) * 2 * 4  # batches 1, 2 x four dtypes
        for r in rs:
            assert all(
                _number(r[k]) and r[k] > 0
                for k in (
                    "fps",
                    "ms_per_batch",
                    "gflop_per_frame",
                    "tflops",
                    "pct_matmul_peak",
                    "pct_conv_peak",
                    "peak_mb",
                )
            ), r
            if r["dtype"] in ("bf16", "fp16"):
                assert _number(r["psnr_db"]) and r["psnr_db"] > 30, r

    assert {r["domain"] for r in sec["train"]} == {"cross", "in"}
    for r in sec["train"]:
        assert r["precision"] == "fp32" and r["losses_finite"] and r["steps"] == 2, r
        assert _number(r["steps_per_s"]) and _number(r["s_per_step"]) and _number(r["first_step_s"])

    train_cli, probe = sec["torchrun"]
    assert train_cli["ok"] and train_cli["rc"] == 0 and train_cli["steps"] == 2 and _number(train_cli["it_s"])
    assert probe["ok"] and probe["backend"] == "gloo" and probe["world"] == 1

    assert {r["dtype"] for r in sec["render"]} == {"fp32", "bf16"}
    for r in sec["render"]:
        assert all(
            _number(r[k]) and r[k] > 0 for k in ("generate_fps", "render_fps", "render_vs_generate", "encode_only_fps")
        ), r
        assert r["bottleneck"] in ("encoding", "generation")
    encoders = {r["encoder"]: r for r in sec["encoders"]}
    assert all(encoders[k]["ok"] and _number(encoders[k]["fps"]) for k in encoders if k.startswith("libx264"))
    assert not encoders["h264_nvenc"]["ok"] and encoders["h264_nvenc"]["skipped"]  # needs the GPU

    levers = {r["variant"]: r for r in sec["levers"]}
    for k in ("eager", "eager-no-sub-batch", "eager-cudnn-benchmark", "compile-no-sub-batch"):
        assert _number(levers[k]["ms_per_batch"]) and _number(levers[k]["vs_eager"]), levers[k]
    assert _number(levers["compile-no-sub-batch"]["compile_s"]) and levers["compile-no-sub-batch"]["max_abs_diff"] == 0
    for k in ("cuda-graph", "cuda-graph-no-sub-batch", "compile-reduce-overhead"):
        assert levers[k]["skipped"].startswith("CUDA only")

    goals = sec["goals"]
    assert goals and all(g["met"] is None for g in goals)  # the dry run's sizes: no verdicts


def test_markdown_has_a_table_per_section(dry_run):
    out, result, _ = dry_run
    md = (out / "results.md").read_text()
    assert md.startswith("# gpu_check: cpu (quick dry run)")
    for name in (
        "goals",
        "machine",
        "setup",
        "steps",
        "tests",
        "peak",
        "stylegan2",
        "biggan",
        "train",
        "torchrun",
        "render",
        "encoders",
        "levers",
    ):
        assert f"\n## {name}\n\n|" in md, name
    assert "| resolution | batch | dtype | fps |" in md
    assert (out / "logs" / "stylegan2-hi.log").is_file() and (out / "logs" / "tests-junit.xml").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_cuda_without_a_gpu_fails_fast_in_one_line(tmp_path):
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cuda", "--out", str(out)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda asked but no CUDA GPU is visible"), p.stderr
    assert not out.exists()
