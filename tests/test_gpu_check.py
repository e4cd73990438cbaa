"""benchmarks/gpu_check.py cannot rot: its CPU dry run (--device cpu --quick) runs every step at
tiny sizes and writes each step's rows into at most 8 files, one folder deep; a step stopped at the
end of its share writes what it had; asking for CUDA without a GPU fails in one line."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import time
import zipfile
from argparse import Namespace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)
STEPS = [name for name, _, _ in gpu_check.STEPS]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MOCOHD_TEST_DEVICE", "MOCOHD_DEBUG", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _check(out: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out), "--wheels", str(out / "none")]
    return subprocess.run([*cmd, *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "out"
    p = _check(out)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, _rows(out)


def test_every_step_writes_its_rows_into_few_files_one_folder_deep(dry_run):
    out, rows = dry_run
    files = list(out.iterdir())
    assert all(f.is_file() for f in files) and len(files) <= 8, files
    assert {f.name for f in files} <= {"rows.jsonl", "summary.md", "log.txt", "profile.txt", "tests.txt", "dist.txt"}
    assert [r["step"] for r in rows][0] == "machine" and {r["step"] for r in rows} == {"machine", *STEPS}
    bad = [r for r in rows if r["status"] != "ok"]
    assert not bad, bad
    assert rows[-1]["at_s"] < 90  # the dry run is quick: ~25 s on 2 busy cores (the old one took 100-140 s)
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# gpu_check: cpu (quick dry run)") and "done in" in summary
    assert all(f"\n## {name}\n\n| " in summary for name in STEPS)


def test_each_step_measures_what_it_says(dry_run):
    out, rows = dry_run
    by = {}
    for r in rows:
        by.setdefault(r["step"], []).append(r)
    (machine,) = by["machine"]
    assert (
        machine["torch"] == torch.__version__ and machine["mocohd"] and set(machine["wheels"]) == set(gpu_check.WHEELS)
    )
    assert [r["case"] for r in by["preflight"]] == ["render batch", "training iteration"]
    assert all(_number(r["profiled_ms"]) and _number(r["cpu_ops_ms"]) for r in by["preflight"])
    assert "== training iteration" in (out / "profile.txt").read_text()
    assert [r["case"] for r in by["render"]] == ["16 px fp32", "16 px bf16", "32 px fp32", "32 px bf16"]
    assert all(r["render_fps"] > 0 and r["synthesize_fps"] > 0 for r in by["render"])
    for r in by["train"]:  # every G step and the D step, timed
        assert len(r["parts_s"]) == r["g_steps"] + 1 and r["losses_finite"] and _number(r["seconds"]), r
    (fvd,) = by["fvd16"]
    assert _number(fvd["fvd16"]) and fvd["real"] == fvd["fake"] == 4 and "random weights" in fvd["detector"]
    (tests,) = by["tests"]
    assert tests["passed"] == 1 and tests["failed"] == tests["errors"] == 0 and "test_device_paths.py" in tests["files"]
    (dist,) = by["dist"]
    assert dist["world"] == 2 and dist["backend"] == "gloo" and all(v is True for v in dist["checks"].values())
    assert set(dist["checks"]) >= {"average_grads", "gather", "gather_objects", "broadcast_module_in_sync", "any"}
    assert all(r["bitwise_equal"] for r in by["same_seed"]) and len(by["same_seed"]) == 2
    (resume,) = by["resume"]
    assert resume["equal"] and resume["max_abs_diff"] == {"M": 0.0, "D_V": 0.0, "D_I": 0.0}


def test_dist_worker_on_a_one_process_group(tmp_path):
    """The path of a 1-GPU machine: Dist's collectives forced on over a 1-process group (gloo here)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(_env(), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    cmd = [sys.executable, str(SCRIPT), "--dist-worker", "--device", "cpu", "--dist-mib", "1"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    (line,) = [x for x in p.stdout.splitlines() if x.startswith("GPU_CHECK_DIST ")]
    info = json.loads(line.split(" ", 1)[1])
    assert info["world"] == 1 and info["backend"] == "gloo" and info["bus_gb_s"] is None
    assert len(info["checks"]) == 7 and all(v is True for v in info["checks"].values()), info


def _check_in_process(tmp_path, monkeypatch, steps, funcs, budget=60.0):
    """gpu_check's runner, in this process, on ``steps`` (name, share, least) doing ``funcs``."""
    monkeypatch.setattr(gpu_check, "STEPS", steps)
    monkeypatch.setattr(gpu_check, "STEP_FUNCS", funcs)
    args = Namespace(device="cpu", quick=True, budget=budget, only=None)
    ck = gpu_check.Check(args, tmp_path, tmp_path)
    assert ck.run() == 0
    return _rows(tmp_path)


def test_steps_that_would_start_out_of_time_are_skipped(tmp_path, monkeypatch):
    rows = _check_in_process(tmp_path, monkeypatch, gpu_check.STEPS, gpu_check.STEP_FUNCS, budget=0)
    assert [r["step"] for r in rows] == STEPS
    assert all(r["status"] == "skipped" and r["note"].startswith("out of time") for r in rows)


def test_a_step_stopped_at_its_share_writes_what_it_had_and_the_next_runs(tmp_path, monkeypatch):
    def slow(ck):
        r = ck.row(case="iteration 1")
        r["parts_s"] = [0.1]
        time.sleep(30)

    def broken(ck):
        raise ValueError("a step that fails")

    t = time.perf_counter()
    rows = _check_in_process(
        tmp_path,
        monkeypatch,
        [("train", 0.5, 0.1), ("fvd16", 5, 0.1), ("resume", 5, 1e6)],
        {"train": slow, "fvd16": broken, "resume": broken},
    )
    assert time.perf_counter() - t < 10
    train, fvd, resume = rows
    assert train["status"] == "timeout" and train["parts_s"] == [0.1] and "share" in train["note"]
    assert fvd["status"] == "failed" and fvd["error"] == "ValueError: a step that fails"
    assert resume["status"] == "skipped"
    assert "ValueError: a step that fails" in (tmp_path / "log.txt").read_text()


def test_wheels_are_installed_from_the_folder_when_missing(tmp_path, monkeypatch):
    folder = tmp_path / "wheels"
    folder.mkdir()
    info = "gpu_check_fake-1.0.dist-info"
    with zipfile.ZipFile(folder / "gpu_check_fake-1.0-py3-none-any.whl", "w") as z:
        z.writestr("gpu_check_fake/__init__.py", "VALUE = 7\n")
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: gpu-check-fake\nVersion: 1.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    monkeypatch.setattr(gpu_check, "WHEELS", {"gpu-check-fake": "1.0", "pytest": "any", "gpu-check-absent": "1"})
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    done = gpu_check.install_wheels(folder, tmp_path / "site")
    assert done["gpu-check-fake"].startswith("installed gpu_check_fake-1.0-py3-none-any.whl")
    assert done["pytest"].startswith("present") and done["gpu-check-absent"].startswith("MISSING: no wheel")
    assert (tmp_path / "site" / "gpu_check_fake" / "__init__.py").is_file()
    assert os.environ["PYTHONPATH"].startswith(str(tmp_path / "site"))


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
    assert p.returncode == 1 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda asked but no CUDA GPU is visible"), p.stderr
    assert not out.exists()
