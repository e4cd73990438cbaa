"""Processes together (``mocohd_cli.distributed``): rank 0's slow set-up past the group's timeout, a
writer that fails, a store home that is not shared by the nodes, the device each process takes,
and the process group ended on every way out of train and eval. Two gloo processes on the CPU,
each started with its own environment (tests/support/dist_worker.py); about 30 s in all."""

import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.distributed as td

from mocohd_cli.data.procedural import write_dataset
from mocohd_cli.distributed import Dist
from mocohd_cli.errors import MocohdError
from mocohd_cli.train.run import resolve_precision

from .test_eval import store_detector

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two(case: str, *args, timeout: float = 120) -> list[dict]:
    """Run ``case`` of tests/support/dist_worker.py on 2 gloo processes, rank 1 as if on another
    node (``LOCAL_RANK`` 0, ``LOCAL_WORLD_SIZE`` 1); an argument given as a pair is (rank 0's,
    rank 1's). Their JSON lines, rank 0's first."""
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        env.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
        mine = [str(a[rank] if isinstance(a, tuple) else a) for a in args]
        cmd = [sys.executable, "-m", "tests.support.dist_worker", case, *mine]
        procs.append(
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    outs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            assert p.returncode == 0, stderr[-3000:]
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outs


# ---------------------------------------------------------------------------- rank 0 first


def test_the_writer_may_work_longer_than_the_groups_timeout():
    """Rank 0 works 4 s with a 1.5 s timeout on the group: rank 1 waits on the store, not in a
    collective (which gloo would abort after 1.5 s), then the group still works."""
    outs = two("slow_writer", "4", "1.5")
    assert [o.get("result") for o in outs] == [
        {"got": "made", "all": ["made", "read"]},
        {"got": "read", "all": ["made", "read"]},
    ], outs
    assert not any(o["initialized"] for o in outs)


@pytest.mark.parametrize("kind", ["mocohd", "bug"])
def test_a_failing_writer_stops_every_process_with_one_line(kind):
    r0, r1 = two("failing_writer", kind)
    assert r0["error"] == ("MocohdError" if kind == "mocohd" else "ValueError")
    assert (
        r1["error"] == "MocohdError"
        and r1["message"] == "process 0 failed (its error is above); this process stops too"
    )
    assert not r0["initialized"] and not r1["initialized"]


# ---------------------------------------------------------------------------- a store home on every node


def test_a_store_home_the_nodes_do_not_share_is_refused_in_one_line(tmp_path):
    """Two 'nodes', each with its own folder: both processes stop with the same line and end the
    group. One folder for both: they go on, and rank 0's marker file is gone."""
    a, b = tmp_path / "node0", tmp_path / "node1"
    outs = two("shared", a)
    assert [o.get("result") for o in outs] == [{"rank": 0, "left": []}, {"rank": 1, "left": []}], outs
    b.mkdir()
    r0, r1 = two("shared", (a, b))
    for r in (r0, r1):
        assert r["error"] == "MocohdError" and len(r["message"].splitlines()) == 1, r
        assert f"MOCOHD_HOME ({a}) is not shared: 1 of 2 processes" in r["message"]
        assert "a folder every node mounts at the same path" in r["message"]
        assert not r["initialized"]
    assert r0["message"] == r1["message"]
    assert not list(a.iterdir()) and not list(b.iterdir())  # no marker left


# ---------------------------------------------------------------------------- devices


@pytest.fixture
def two_gpus(monkeypatch):
    """CUDA as if with 2 GPUs; ``set_device`` calls recorded."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(torch.device(d)))
    return calls


class _Joined(Exception):
    """Raised in place of the rendezvous: how far ``Dist.from_env`` got."""


def test_under_torchrun_each_process_takes_its_local_ranks_gpu_and_cuda_n_is_refused(two_gpus, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(td, "is_initialized", lambda: False)

    def rendezvous(*args, **kwargs):
        raise _Joined

    monkeypatch.setattr(td, "rendezvous", rendezvous)
    for name in ("cuda:1", "cuda:0"):
        with pytest.raises(MocohdError, match=f"^device '{name}' under torchrun: each process uses the GPU of its"):
            Dist.from_env(name)
    assert two_gpus == []
    for name in ("cuda", "auto"):
        with pytest.raises(_Joined):
            Dist.from_env(name)
    assert two_gpus == [torch.device("cuda", 1)] * 2  # before the process group (NCCL) or any allocation
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(MocohdError, match="local rank 2 has no GPU"):
        Dist.from_env("cuda")


def test_one_process_on_cuda_n_makes_it_the_current_device(two_gpus, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert Dist.from_env("cuda:1").device == torch.device("cuda", 1)
    assert two_gpus == [torch.device("cuda", 1)]  # pinned memory and bf16 support then ask GPU 1


def test_precision_auto_asks_the_runs_gpu(monkeypatch):
    """bf16 support is asked of the run's device, not of the current one (GPU 0 by default)."""
    current = [0]

    @contextmanager
    def device(d):
        was, current[0] = current[0], torch.device(d).index
        try:
            yield
        finally:
            current[0] = was

    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: current[0] == 1)
    assert resolve_precision("auto", torch.device("cuda", 1)) == "bf16"
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("fp16", torch.device("cuda", 0)) == "fp16"


# ---------------------------------------------------------------------------- the group ended on every way out


def test_training_ends_its_process_group_on_every_way_out(tmp_path):
    data = tmp_path / "videos"
    data.mkdir()
    ok = two("open_run", data, 2)
    assert [o.get("result") for o in ok] == [{"world": 2, "in_run": True}] * 2, ok
    failed = two("open_run", data, 3)  # not a multiple of the process count: refused after joining
    assert [o.get("error") for o in failed] == ["UsageError"] * 2, failed
    assert not any(o["initialized"] for o in ok + failed)


@pytest.mark.usefixtures("one_thread")
def test_eval_ends_its_process_group_on_every_way_out(tmp_path):
    store_detector("i3d")
    data = write_dataset(tmp_path / "heads", videos=4, frames=16, size=16, seed=0)
    fakes = write_dataset(tmp_path / "fakes", videos=4, frames=16, size=16, seed=3)
    ok = two("evaluate", data, fakes, "i3d")
    assert ok[0].get("result") == ok[1].get("result") and "fvd16" in ok[0]["result"], ok
    failed = two("evaluate", data, fakes, "no-such-detector")  # fails after joining
    assert [o.get("error") for o in failed] == ["MocohdError"] * 2, failed
    assert not any(o["initialized"] for o in ok + failed)


# ---------------------------------------------------------------------------- leaving


class _Left(Exception):
    pass


@pytest.mark.parametrize(
    ("args", "code"), [(["--version"], 0), (["info", "nothing-here"], 1), (["render", "--frames", "x"], 2)]
)
def test_a_process_of_a_group_leaves_by_os_exit_after_its_exit_handlers(monkeypatch, capsys, args, code):
    """Joined to a torchrun group, the command line runs the exit handlers, then leaves by
    ``os._exit`` with the command's own code (gloo may abort a process during the interpreter's
    teardown); alone, it exits as before."""
    from mocohd_cli import distributed
    from mocohd_cli.cli import entry

    calls = []
    monkeypatch.setattr(entry.atexit, "_run_exitfuncs", lambda: calls.append("handlers"))

    def exit_now(n):
        calls.append(n)
        raise _Left

    monkeypatch.setattr(entry.os, "_exit", exit_now)
    monkeypatch.setattr(distributed, "_joined", True)
    with pytest.raises(_Left):
        entry.main(args)
    assert calls == ["handlers", code]
    monkeypatch.setattr(distributed, "_joined", False)
    calls.clear()
    with pytest.raises(SystemExit) as e:
        entry.main(args)
    assert (e.value.code or 0) == code and calls == []
