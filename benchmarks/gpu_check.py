"""GPU check: what mocohd does on a fresh GPU machine, measured in one 10-minute window.

    python benchmarks/gpu_check.py --device cuda --out $OUT          # the real check (needs a CUDA GPU)
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/g # the dry run: every step at tiny sizes

Offline, no downloads: the generators are config-f StyleGAN2s with random weights built in
memory, the fvd16 step uses the embedded demo models. The steps, in order of value, each with a
share of the budget (--budget, 540 s; a step that would start with less than it needs is
written as skipped, out of time):

    preflight   one render batch and one training iteration under torch.cuda.set_sync_debug_mode
                ("warn") and the profiler: kernel launches, CPU vs CUDA time, where it synchronises
    render      render_frames fps at 256 and 1024 px, fp32 and bf16 (and synthesis alone)
    train       MotionGAN iterations at the authors' sizes (16 clips x 16 frames, 256 px generator,
                128 px frames, 5 G steps; the clips halved while they do not fit): every G and D
                step timed, so a slow one leaves its parts
    fvd16       `evaluate(["fvd16"], ...)` of the demo, 128 clips, against procedural heads
    tests       the device-marked tests only (MOCOHD_TEST_DEVICE=DEVICE pytest -m device FILES)
    dist        Dist's collectives on a real group under torchrun: 2 processes when there are 2 GPUs
                (NCCL; gloo on a CPU), else a 1-process NCCL group, which the row says
    same_seed   the same seed rendered twice: bitwise equal?
    resume      train() for 2 steps against 1 step + resume: equal weights?

Each row is appended to rows.jsonl (and summary.md rewritten) as soon as it is measured, so a
killed run keeps every finished row; a step stopped at the end of its share writes what it had.
Six files at most, all directly in --out (no folders): rows.jsonl, summary.md, log.txt
(tracebacks), profile.txt (the preflight's profiler tables), tests.txt (pytest), dist.txt (torchrun).

Wheels: what the lent GPU machine lacks (WHEELS below; torch, numpy, scipy, torchvision, typer,
rich, imageio, safetensors, huggingface-hub, pillow and pytest are there) is installed from
--wheels (default .gpu-wheels/, ignored by git: carry it) into a temporary folder, before mocohd
is imported. Prepare it where the registry is reachable:

    pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \\
        -d .gpu-wheels imageio-ffmpeg==0.6.0 pytorch-fid==0.3.0

--device cuda without a visible GPU fails at once, in one line, exit code 1.
"""

from __future__ import annotations

import argparse
import datetime
import faulthandler
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# distribution -> version: what mocohd needs and the lent GPU machine lacks (imageio-ffmpeg: mocohd
# imports it; pytorch-fid: tests/test_inception.py imports it. 0.6.0's wheel, 29 MB, fits a carry)
WHEELS = {"imageio-ffmpeg": "0.6.0", "pytorch-fid": "0.3.0"}
# (step, share of the budget in seconds, the least time worth starting it with), in order of value
STEPS = [
    ("preflight", 30, 10),
    ("render", 90, 20),
    ("train", 75, 20),
    ("fvd16", 60, 15),
    ("tests", 150, 30),
    ("dist", 45, 15),
    ("same_seed", 20, 5),
    ("resume", 60, 15),
]
TINY_NETS = dict(dv_channels=4, di_channels=4, proj_dim=8, queue=8)  # the dry run's discriminators
FULL = dict(
    generator="f",  # NVIDIA's config f, random weights
    preflight=dict(resolution=256, batch=8, clips=2, frames=8, frame_size=128),
    render=[(256, 32, 8, 32), (1024, 8, 4, 16)],  # (resolution, batch, videos, frames)
    train=dict(resolution=256, clips=(16, 8, 4), frames=16, frame_size=128, g_steps=5, iterations=3, nets={}),
    fvd=dict(videos=128, batch=16, i3d_scale=1.0, heads=(16, 32, 32)),  # real: 16 heads of 32 frames at 32 px
    tests=[],
    dist_mib=256,
    same_seed=dict(resolution=256, videos=2, frames=8),
    resume=dict(resolution=256, batch=4, frames=8, frame_size=64, pca_samples=10_000, h_dim=384, nets={}),
)
QUICK = dict(
    generator="tiny",  # tests/conftest.py's tiny_config
    preflight=dict(resolution=16, batch=4, clips=2, frames=4, frame_size=16),
    render=[(16, 8, 2, 8), (32, 4, 2, 4)],
    train=dict(resolution=16, clips=(2,), frames=4, frame_size=16, g_steps=2, iterations=2, nets=TINY_NETS),
    fvd=dict(videos=4, batch=4, i3d_scale=1 / 16, heads=(2, 20, 16)),
    tests=["-k", "test_pick_device"],  # collects every device test, runs one
    dist_mib=1,
    same_seed=dict(resolution=16, videos=2, frames=4),
    resume=dict(resolution=16, batch=2, frames=4, frame_size=16, pca_samples=500, h_dim=16, nets=TINY_NETS),
)


class StepTimeout(Exception):
    pass


def first_line(e: BaseException, limit: int = 300) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return (text[0] if text else type(e).__name__)[:limit]


def clean(v):
    """JSON-safe: non-finite floats as text, floats rounded, tuples as lists, the rest as text."""
    if isinstance(v, float):
        return float(f"{v:.4g}") if math.isfinite(v) else str(v)
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    return v if v is None or isinstance(v, (bool, int, str)) else str(v)


def fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, dict)):
        v = json.dumps(v)
    return "-" if v is None else str(v).replace("|", "/").replace("\n", " ")


# ============================================================================
# Setup: wheels, the one-line refusal, the machine


def install_wheels(folder: Path, site: Path) -> dict:
    """Install the WHEELS that are missing from ``folder`` into ``site`` (pip --target, else
    unzipped), put it on sys.path and PYTHONPATH; what was done for each, as text."""
    from importlib import metadata

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    done, todo = {}, []
    found = {norm(w.name.split("-")[0]): w for w in sorted(folder.glob("*.whl"))} if folder.is_dir() else {}
    for dist in WHEELS:
        try:
            done[dist] = f"present {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            if norm(dist) in found:
                todo.append(dist)
            else:
                done[dist] = f"MISSING: no wheel in {folder}"
    if not todo:
        return done
    wheels = [str(found[norm(d)]) for d in todo]
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    p = subprocess.run([*pip, "--target", str(site), *wheels], capture_output=True, text=True, timeout=180)
    how = "pip"
    if p.returncode:  # a wheel is a zip: unpack it, keeping executable bits (imageio-ffmpeg's binary)
        how = f"unzipped (pip failed: {(p.stderr.strip().splitlines() or ['?'])[-1][:120]})"
        for whl in wheels:
            with zipfile.ZipFile(whl) as z:
                for item in z.infolist():
                    target = z.extract(item, site)
                    if (item.external_attr >> 16) & 0o111 or "/binaries/" in item.filename:
                        os.chmod(target, 0o755)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(x for x in (str(site), os.environ.get("PYTHONPATH")) if x)
    for d in todo:
        done[d] = f"installed {Path(found[norm(d)]).name} ({how})"
    return done


def refuse_missing_gpu(device: str) -> None:
    """--device cuda with no (such) GPU visible: one line on stderr, exit 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch

        index, count = torch.device(device).index, torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0 or (index is not None and index >= count):
        seen = f"{count} CUDA GPU(s) are visible" if count else "no CUDA GPU is visible"
        print(
            f"error: --device {device} asked but {seen} (torch {torch.__version__}, built with "
            f"{torch.version.cuda or 'no CUDA'})",
            file=sys.stderr,
        )
        raise SystemExit(1)


def output(cmd: list[str]) -> str | None:
    """The first line ``cmd`` prints, or None (no such program, a failure)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip().splitlines()[0] if p.returncode == 0 and p.stdout.strip() else None


def machine(torch, device, wheels: dict) -> dict:
    import platform

    row = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda, cpus=os.cpu_count())
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        row.update(
            gpu=p.name, gpus=torch.cuda.device_count(), capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count
        )
        row.update(gpu_memory_gb=p.total_memory / 2**30, cudnn=torch.backends.cudnn.version())
        try:
            from torch.cuda import nccl

            v = nccl.version()
            row["nccl"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
        except Exception as e:  # noqa: BLE001 - the row says so
            row["nccl"] = f"unknown ({first_line(e, 80)})"
        row["driver"] = output(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm", "--format=csv,noheader"])
    row.update(commit=output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]), wheels=wheels)
    try:
        import mocohd_cli

        row["mocohd"] = mocohd_cli.__version__
    except Exception as e:  # noqa: BLE001 - the row says why mocohd cannot be imported (a missing wheel)
        row["mocohd"] = f"NOT IMPORTABLE: {first_line(e)}"
    return row


# ============================================================================
# The runner: a global deadline, a share per step, every row written as soon as it exists


class Check:
    def __init__(self, args, out: Path, work: Path):
        import torch

        self.torch, self.args, self.out, self.work = torch, args, out, work
        self.quick, self.sizes = args.quick, QUICK if args.quick else FULL
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.device = torch.device("cuda", self.device.index or 0)
            torch.cuda.set_device(self.device)
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + args.budget
        self.rows: list[dict] = []
        self.open: list[dict] = []  # rows begun and not yet written: a stopped step writes them as they are
        self.step, self.step_end, self.child, self.in_step = "setup", self.deadline, None, False
        self.cache: dict = {}
        self.meta = dict(device=str(self.device), quick=self.quick, budget_s=args.budget, date=now())

    # ---------------------------------------------------------------- rows

    def row(self, **fields) -> dict:
        r = {"step": self.step, **fields}
        self.open.append(r)
        return r

    def emit(self, r: dict, status: str = "ok", **extra) -> None:
        """Append ``r`` to rows.jsonl and rewrite summary.md (SIGALRM held off while writing)."""
        held = hasattr(signal, "pthread_sigmask")
        if held:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        try:
            self.open = [o for o in self.open if o is not r]
            r = clean({**r, **extra, "status": r.get("status", status), "at_s": time.perf_counter() - self.t0})
            self.rows.append(r)
            with open(self.out / "rows.jsonl", "a") as f:
                f.write(json.dumps(r) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.write_summary()
            shown = {k: v for k, v in r.items() if k not in ("step", "status", "profile") and not isinstance(v, dict)}
            print(f"[gpu_check] {r['step']}: {r['status']} {json.dumps(shown)[:400]}", flush=True)
        finally:
            if held:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})

    def close_open(self, status: str, note: str) -> None:
        for r in list(self.open):
            self.emit(r, status, note=note)

    def write_summary(self) -> None:
        m = self.meta
        lines = [
            f"# gpu_check: {m['device']}{' (quick dry run)' if m['quick'] else ''}",
            "",
            f"{m['date']}: "
            + (f"done in {m['wall_s']:.0f} s" if "wall_s" in m else f"{time.perf_counter() - self.t0:.0f} s so far")
            + f" of a {m['budget_s']:.0f} s budget; the rows, as measured, are in rows.jsonl.",
        ]
        for name in ["machine"] + [s[0] for s in STEPS]:
            rows = [r for r in self.rows if r["step"] == name]
            if not rows:
                continue
            cols = []
            for r in rows:
                cols += [k for k in r if k not in cols and k != "step"]
            lines += ["", f"## {name}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
        tmp = self.out / "summary.md.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.out / "summary.md")

    def tail(self, name: str, lines: int = 3) -> str:
        """The last lines of output file ``name``, on one line."""
        text = (self.out / name).read_text(errors="replace").strip().splitlines() if (self.out / name).is_file() else []
        return " | ".join(x.strip() for x in text[-lines:])[-400:]

    def log(self, text: str) -> None:
        with open(self.out / "log.txt", "a") as f:
            f.write(text.rstrip() + "\n")

    # ---------------------------------------------------------------- time

    def left(self) -> float:
        """Seconds left of the running step's share."""
        return self.step_end - time.perf_counter()

    def enough(self, r: dict, need: float) -> bool:
        """False, and ``r`` written as skipped, when less than ``need`` seconds are left of the share."""
        if self.left() >= need:
            return True
        self.emit(r, "skipped", note=f"out of time: {max(self.left(), 0):.0f} s of the step's share left")
        return False

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def peak_gb(self, reset: bool = False) -> float | None:
        if not self.cuda:
            return None
        if reset:
            self.sync()
            self.torch.cuda.reset_peak_memory_stats(self.device)
        return self.torch.cuda.max_memory_allocated(self.device) / 2**30

    def run(self) -> int:
        """Every step in turn, each within its share of what is left of the budget."""
        handlers = {sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT)}
        try:
            for name, share, least in STEPS:
                if self.args.only and name not in self.args.only:
                    continue
                self.step = name
                left = self.deadline - time.perf_counter()
                if left < least:
                    self.emit({"step": name}, "skipped", note=f"out of time: {max(left, 0):.0f} s of the budget left")
                    continue
                self.step_end = time.perf_counter() + min(share, left)
                try:
                    self.run_step(name, min(share, left))
                except StepTimeout:  # the alarm as the step ended: its rows are written
                    pass
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        self.meta["wall_s"] = time.perf_counter() - self.t0
        self.write_summary()
        bad = [r["step"] for r in self.rows if r["status"] not in ("ok", "skipped") or r.get("ok") is False]
        print(f"[gpu_check] {len(self.rows)} rows, {self.meta['wall_s']:.0f} s; not ok: {bad or 'none'}", flush=True)
        return 0

    def run_step(self, name: str, limit: float) -> None:
        torch = self.torch
        flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
        before = len(self.rows)
        # the step's own checks stop it at its share (SIGALRM, between Python calls); the watchdog
        # ends the process if it is stuck in one call 30 s beyond, after writing the open rows
        dog = threading.Timer(limit + 30, self.watchdog, args=(name,))
        dog.daemon = True
        dog.start()
        signal.setitimer(signal.ITIMER_REAL, limit)
        self.in_step = True
        try:
            STEP_FUNCS[name](self)
        except StepTimeout:
            self.close_open("timeout", f"stopped at the end of its {limit:.0f} s share")
        except Exception as e:  # noqa: BLE001 - every failure is a row, and the next step runs
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.log(f"--- {name}\n{traceback.format_exc()}")
            self.close_open("failed", first_line(e))
            if len(self.rows) == before:
                self.emit({"step": name}, "failed", error=first_line(e))
        finally:
            self.in_step = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            dog.cancel()
            self.kill_child()
            self.close_open("failed", "left open by the step")
            if len(self.rows) == before:
                self.emit({"step": name}, "timeout", note=f"no row within its {limit:.0f} s share")
            (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark) = (
                flags
            )
            if self.cuda:
                torch.cuda.empty_cache()

    def watchdog(self, name: str) -> None:
        self.close_open("timeout", "stuck in one call (CUDA, NCCL, I/O) 30 s past its share: the check ends here")
        with open(self.out / "log.txt", "a") as f:
            f.write(f"--- watchdog: {name} stuck; the threads' stacks:\n")
            f.flush()
            faulthandler.dump_traceback(f, all_threads=True)
        self.kill_child()
        os._exit(124)

    def on_signal(self, signum, frame) -> None:
        if signum == signal.SIGALRM:
            if self.in_step:
                raise StepTimeout
            return
        self.close_open("killed", f"the check got signal {signum}")
        self.kill_child()
        os._exit(128 + signum)

    # ---------------------------------------------------------------- subprocesses

    def run_child(self, cmd: list[str], log: str, env: dict | None = None) -> int:
        """Run ``cmd`` (its own process group) with output appended to ``log`` until the step's share
        ends (then its group is killed: exit code 124)."""
        with open(self.out / log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            self.child = subprocess.Popen(
                cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True
            )
            try:
                return self.child.wait(timeout=max(1.0, self.left()))
            except subprocess.TimeoutExpired:
                f.write("\n[gpu_check] stopped at the end of the step's share\n")
                return 124
            finally:
                self.kill_child()

    def kill_child(self) -> None:
        p, self.child = self.child, None
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()

    def child_env(self, **extra) -> dict:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
        env["PYTHONPATH"] = os.pathsep.join(x for x in (str(ROOT), env.get("PYTHONPATH")) if x)
        return env

    # ---------------------------------------------------------------- models, built once

    def generator(self, resolution: int):
        """A StyleGAN2 with random weights: NVIDIA's config f (dry run: a tiny one), frozen, on the device."""
        if ("G", resolution) not in self.cache:
            from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

            if self.sizes["generator"] == "f":
                cfg = StyleGAN2Config.preset("f", resolution)
            else:
                cfg = StyleGAN2Config(
                    resolution=resolution, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32
                )
            self.torch.manual_seed(0)
            G = StyleGAN2Generator(cfg).eval().requires_grad_(False)
            self.cache["G", resolution] = G.to(self.device)
        return self.cache["G", resolution]

    def motion(self, G, train: bool = False):
        """An authors' LSTM motion model on a random orthonormal PCA basis of G's w space."""
        from mocohd_cli.motion import MotionConfig, MotionGenerator

        torch = self.torch
        torch.manual_seed(0)
        n = min(384, G.w_dim)
        q, _ = torch.linalg.qr(torch.randn(G.w_dim, n))
        h = 16 if self.quick else MotionConfig.h_dim
        M = MotionGenerator(
            MotionConfig(w_dim=G.w_dim, noise_dim=G.w_dim, h_dim=h, n_pca=n),
            q.T.contiguous(),
            torch.linspace(2, 0.5, n),
        )
        return (M.train().requires_grad_(True) if train else M.eval().requires_grad_(False)).to(self.device)

    def motion_gan(self, s: dict, precision: str):
        """(MotionGAN at sizes ``s``, real clips x [B, T, 3, S, S]): the recipe's networks, fresh."""
        from mocohd_cli.train import Dist, GANConfig, MotionGAN

        torch = self.torch
        G = self.generator(s["resolution"])
        M = self.motion(G, train=True)
        cfg = GANConfig(
            frames=s["frames"],
            frame_size=s["frame_size"],
            g_steps=s.get("g_steps", 1),
            world_batch=s["clips"],
            precision=precision,
            **s.get("nets", TINY_NETS if self.quick else {}),
        )
        gan = MotionGAN(G, M, cfg, Dist(device=self.device), seed=0)
        b, g = cfg.world_batch, torch.Generator().manual_seed(5)
        x = torch.rand(b, cfg.frames, 3, cfg.frame_size, cfg.frame_size, generator=g) * 2 - 1
        return gan, x.to(self.device)

    def precision(self) -> str:
        """What training's 'auto' picks: bf16 autocast on CUDA when supported, else fp32."""
        return "bf16" if self.cuda and self.torch.cuda.is_bf16_supported() else "fp32"


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# ============================================================================
# The steps, in order of value


def step_preflight(ck: Check) -> None:
    """One render batch and one training iteration (1 G step), warm, under the profiler and
    set_sync_debug_mode('warn'): kernel launches, CPU vs CUDA time, the lines that synchronise."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from mocohd_cli import render_frames

    torch, s = ck.torch, ck.sizes["preflight"]
    G = ck.generator(s["resolution"])
    M = ck.motion(G)
    gan, x = ck.motion_gan(s, ck.precision())

    def render_batch():
        return list(render_frames(M, G, s["batch"], batch=s["batch"]))

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ck.cuda else [])
    for case, fn in (("render batch", render_batch), ("training iteration", lambda: gan.iteration(x))):
        r = ck.row(case=case)
        t = time.perf_counter()
        fn()  # cold: the first call's one-off costs (cuDNN, cuBLAS, allocator)
        ck.sync()
        r["cold_s"] = time.perf_counter() - t
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if ck.cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                with profile(activities=acts) as prof:
                    t = time.perf_counter()
                    fn()
                    ck.sync()
                    wall = time.perf_counter() - t
            finally:
                if ck.cuda:
                    torch.cuda.set_sync_debug_mode(0)
        events = prof.key_averages()
        kernels = [e for e in events if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
        device_ms = sum(e.self_device_time_total for e in kernels) / 1000  # as the table's footer sums it
        launches = sum(e.count for e in events if re.match(r"cu(da)?LaunchKernel", e.key))
        syncs: dict[str, int] = {}
        for w in caught:
            if "synchroniz" in str(w.message):
                where = f"{Path(w.filename).name}:{w.lineno}"
                syncs[where] = syncs.get(where, 0) + 1
        r.update(
            profiled_ms=wall * 1000,  # the warm call, the profiler's overhead included
            cpu_ops_ms=sum(e.self_cpu_time_total for e in events) / 1000,
            cuda_ms=device_ms if ck.cuda else None,
            cuda_busy_pct=100 * device_ms / (wall * 1000) if ck.cuda else None,
            launches=launches if ck.cuda else None,
            syncs=sum(syncs.values()) if ck.cuda else "CUDA only",
            sync_sites=dict(sorted(syncs.items(), key=lambda kv: -kv[1])[:6]),
        )
        sort = "self_device_time_total" if ck.cuda else "self_cpu_time_total"
        with open(ck.out / "profile.txt", "a") as f:
            f.write(f"== {case} ({s}), warm, {wall * 1000:.1f} ms\n{events.table(sort_by=sort, row_limit=25)}\n\n")
        ck.emit(r)


def step_render(ck: Check) -> None:
    """render_frames (the library's render path: LSTM, synthesis, uint8, to the CPU) in frames/s, and
    frames.synthesize alone on one batch, at each resolution in fp32 and bf16."""
    from mocohd_cli import render_frames
    from mocohd_cli.frames import VideoNoise, synthesize
    from mocohd_cli.render import DTYPES

    torch = ck.torch
    for res, batch, videos, frames in ck.sizes["render"]:
        for name in ("fp32", "bf16"):
            r = ck.row(case=f"{res} px {name}", batch=batch, videos=videos, frames=frames)
            if not ck.enough(r, 5):
                continue
            G, dt = ck.generator(res), DTYPES[name]
            M = ck.motion(G)
            list(render_frames(M, G, 3, videos=videos, batch=batch, dtype=dt))  # warm-up
            ck.peak_gb(reset=True)
            t, r["frames_done"] = time.perf_counter(), 0
            for f in render_frames(M, G, frames, videos=videos, batch=batch, dtype=dt):  # progress kept in r
                r.update(frames_done=r["frames_done"] + f.shape[0], seconds=time.perf_counter() - t)
            r.update(render_fps=r["frames_done"] / r["seconds"], peak_gb=ck.peak_gb())
            w = G.mapping(torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(1)).to(ck.device))
            noise = VideoNoise(G, batch, "fixed", torch.Generator().manual_seed(2), ck.device)(torch.arange(batch))
            with torch.no_grad():
                synthesize(G, w, noise, dtype=dt)
                ck.sync()
                t, k = time.perf_counter(), 0
                while k < 3 or (k < 20 and time.perf_counter() - t < 1.0):
                    synthesize(G, w, noise, dtype=dt)
                    k += 1
                ck.sync()
            r.update(synthesize_fps=batch * k / (time.perf_counter() - t), cudnn_tf32=torch.backends.cudnn.allow_tf32)
            ck.emit(r)


def step_train(ck: Check) -> None:
    """MotionGAN iterations at the authors' sizes (16 clips; halved while they do not fit in the GPU's
    memory, each try a row); each G and D step timed (synchronised), so an iteration stopped by the
    share leaves the steps it finished."""
    from mocohd_cli.runtime import precision

    s = ck.sizes["train"]
    for clips in s["clips"]:
        try:
            with precision(ck.device, tf32=True, benchmark=True):  # as training's steps run
                return train_iterations(ck, {**s, "clips": clips})
        except ck.torch.OutOfMemoryError as e:
            note = f"out of memory at {clips} clips: {first_line(e, 120)}"
            if not ck.open:  # out of memory before the first row
                ck.row(clips=clips)
            ck.close_open("failed", note)
        ck.torch.cuda.empty_cache()


def train_iterations(ck: Check, s: dict) -> None:
    precision = ck.precision()
    base = dict(clips=s["clips"], frames=s["frames"], frame_size=s["frame_size"], g_steps=s["g_steps"])
    r = ck.row(case="iteration 1 (cold)", precision=precision, **base)
    gan, x = ck.motion_gan(s, precision)
    ck.peak_gb(reset=True)
    for it in range(1, s["iterations"] + 1):
        if it > 1:
            r = ck.row(case=f"iteration {it}", precision=precision, **base)
            if not ck.enough(r, 1.5 * ck.rows[-1].get("seconds", 0)):
                return
        parts, losses = r.setdefault("parts_s", []), {}
        t0 = time.perf_counter()
        for k in range(s["g_steps"] + 1):
            t = time.perf_counter()
            losses.update(gan.g_step(x) if k < s["g_steps"] else gan.d_step(x))
            ck.sync()
            parts.append(time.perf_counter() - t)
            r["seconds"] = time.perf_counter() - t0
        r.update(
            g_step_s=sum(parts[:-1]) / s["g_steps"],
            d_step_s=parts[-1],
            peak_gb=ck.peak_gb(),
            losses_finite=all(math.isfinite(v) for v in losses.values()),
        )
        ck.emit(r)


def step_fvd16(ck: Check) -> None:
    """fvd16 of the demo models against procedural talking heads (a few, their clips repeated:
    writing them costs ~0.2 s each); the I3D of the user's store if `mocohd fetch i3d` put one
    there, else random weights of the published sizes (the time holds, the value means nothing)."""
    from mocohd_cli.data.procedural import write_dataset
    from mocohd_cli.detectors import I3D, I3DConfig
    from mocohd_cli.formats.canonical import save_model
    from mocohd_cli.metrics.evaluate import evaluate

    torch, s = ck.torch, ck.sizes["fvd"]
    r = ck.row(case="demo", videos=s["videos"], batch=s["batch"])
    real_i3d = ck.cache.get("user_i3d")
    if real_i3d and Path(real_i3d).is_file():
        r["detector"], i3d = "the store's i3d", str(real_i3d)
    else:
        cfg = I3DConfig() if s["i3d_scale"] == 1 else I3DConfig.scaled(s["i3d_scale"])
        net, g = I3D(cfg), torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * ((2 / p[0].numel()) ** 0.5 if p.ndim > 1 else 0.05))
        i3d = ck.work / "i3d-random.safetensors"
        save_model(i3d, net.state_dict(), kind="i3d", family="i3d", config=cfg.to_dict(), source={"format": "random"})
        r["detector"] = f"random weights ({'published' if s['i3d_scale'] == 1 else 'tiny'} sizes): no i3d in the store"
    t = time.perf_counter()
    heads, frames, size = s["heads"]
    data = write_dataset(ck.work / "fvd-heads", videos=heads, frames=frames, size=size, seed=0)
    r["data_s"] = time.perf_counter() - t
    ck.peak_gb(reset=True)
    res = evaluate(
        ["fvd16"],
        data,
        motion="demo",
        image="demo",
        videos=s["videos"],
        device=str(ck.device),
        batch=s["batch"],
        i3d=i3d,
        repeat=True,
    )[0]
    sec = res.seconds
    r.update(fvd16=res.value, real=res.real, fake=res.fake, seconds=sec.get("total"), peak_gb=ck.peak_gb())
    r.update(real_s=sec.get("real"), fake_s=sec.get("fake"), clips_per_s=(res.real + res.fake) / sec["total"])
    ck.emit(r)


def step_tests(ck: Check) -> None:
    """The device-marked tests, on the device: only the files that mark some (no test file that
    imports what the machine lacks is collected), parsed from JUnit XML."""
    import xml.etree.ElementTree as ET

    files = sorted(p for p in (ROOT / "tests").glob("test_*.py") if "mark.device" in p.read_text())
    junit = ck.work / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "device", f"--junitxml={junit}"]
    cmd += [str(f.relative_to(ROOT)) for f in files] + ck.sizes["tests"]
    r = ck.row(device=ck.args.device, files=[f.name for f in files])
    rc = ck.run_child(cmd, "tests.txt", ck.child_env(MOCOHD_TEST_DEVICE=ck.args.device))
    counts, failed = dict(passed=0, failed=0, errors=0, skipped=0), []
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            kinds = {child.tag for child in case}
            kind = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
            counts[{"failure": "failed", "error": "errors"}.get(kind, kind)] += 1
            if kind in ("failure", "error"):
                failed.append(case.get("name"))
    r.update(rc=rc, **counts, failures=failed[:20])
    ok = rc == 0 and counts["passed"] > 0 and not failed
    ck.emit(r, "ok" if ok else ("timeout" if rc == 124 else "failed"), **({} if ok else {"tail": ck.tail("tests.txt")}))


def step_dist(ck: Check) -> None:
    """Dist's collectives on a real process group under torchrun (the worker: dist_worker)."""
    torch = ck.torch
    nproc = min(2, torch.cuda.device_count()) if ck.cuda else 2
    r = ck.row(processes=nproc, backend="nccl" if ck.cuda else "gloo")
    if nproc == 1:
        r["note"] = "one GPU: a 1-process NCCL group (Dist's collectives forced on; no traffic between GPUs)"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    device = "cuda" if ck.cuda else ck.args.device  # each process takes its local rank's GPU (never cuda:N)
    cmd += [str(Path(__file__).resolve()), "--dist-worker", "--device", device]
    cmd += ["--dist-mib", str(ck.sizes["dist_mib"])]
    env = ck.child_env(**({"OMP_NUM_THREADS": "1"} if not ck.cuda else {}))
    rc = ck.run_child(cmd, "dist.txt", env)
    text = (ck.out / "dist.txt").read_text(errors="replace")
    found = [json.loads(line.split(" ", 1)[1]) for line in text.splitlines() if line.startswith("GPU_CHECK_DIST ")]
    r.update(found[-1] if found else {}, rc=rc)
    ok = rc == 0 and bool(found) and all(v is True for v in found[-1]["checks"].values())
    ck.emit(r, "ok" if ok else ("timeout" if rc == 124 else "failed"), **({} if ok else {"tail": ck.tail("dist.txt")}))


def dist_worker(device: str, mib: int) -> None:
    """One torchrun process: every collective of Dist, checked; rank 0 prints one JSON line."""
    import torch
    import torch.distributed as td

    from mocohd_cli.distributed import Dist

    class OneProcessGroup(Dist):  # Dist skips its collectives alone; on a 1-process group run them anyway
        enabled = property(lambda self: True)

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist = Dist.from_env(device)
    else:
        dev = torch.device(device)
        if dev.type == "cuda":
            dev = torch.device("cuda", dev.index or 0)
            torch.cuda.set_device(dev)
        td.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        dist = OneProcessGroup(device=dev, owner=True)
    rank, n, dev = dist.rank, dist.world, dist.device
    checks = {}

    def check(name, fn):
        try:
            checks[name] = bool(fn())
        except Exception as e:  # noqa: BLE001 - the failed collective is named in the row
            checks[name] = first_line(e, 160)

    def average_grads():
        lin, extra = torch.nn.Linear(4, 3).to(dev), torch.nn.Parameter(torch.zeros(2, device=dev))
        for p in lin.parameters():
            p.grad = torch.full_like(p, rank + 1.0)
        extra.grad = None if rank == 0 else torch.full_like(extra, 2.0)  # missing on rank 0: counts as zeros
        dist.average_grads([*lin.parameters(), extra])
        mean = [torch.allclose(p.grad, torch.full_like(p, (n + 1) / 2)) for p in lin.parameters()]
        return all(mean) and torch.allclose(extra.grad, torch.full_like(extra, 2.0 * (n - 1) / n))

    def broadcast_module():
        m = torch.nn.Linear(3, 3).to(dev)
        torch.nn.init.constant_(m.weight, rank + 1.0)
        dist.broadcast_module(m)
        dist.check_in_sync(m, step=0)  # raises if the ranks differ
        return bool((m.weight == 1).all())

    check("average_grads", average_grads)
    want = torch.arange(n, dtype=torch.float32).repeat_interleave(2)
    check("gather", lambda: torch.equal(dist.gather(torch.full((2, 3), float(rank), device=dev))[:, 0].cpu(), want))
    check("gather_objects", lambda: dist.gather_objects({"rank": rank}) == [{"rank": i} for i in range(n)])
    check("broadcast_module_in_sync", broadcast_module)
    check("any", lambda: dist.any(rank == n - 1) is True and dist.any(False) is False)
    check("writer_first", lambda: dist.writer_first(lambda first: first) == (rank == 0))
    check("barrier", lambda: dist.barrier() is None)
    try:  # a check is true only where it is true on every rank
        per_rank = dist.gather_objects(checks)
        checks = {k: next((c[k] for c in per_rank if c[k] is not True), True) for k in checks}
    except Exception as e:  # noqa: BLE001 - then rank 0's own checks, and this
        checks["every_rank"] = first_line(e, 160)
    buf = torch.ones(mib * 2**18, device=dev)  # one flattened all-reduce, as average_grads makes
    for _ in range(2):
        td.all_reduce(buf)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(5):
        td.all_reduce(buf)
    sync()
    sec = (time.perf_counter() - t) / 5
    if rank == 0:
        info = dict(world=n, backend=td.get_backend(), checks=checks, all_reduce_mib=mib, all_reduce_ms=sec * 1000)
        info["bus_gb_s"] = buf.numel() * 4 * 2 * (n - 1) / n / sec / 1e9 if n > 1 else None
        print("GPU_CHECK_DIST " + json.dumps(clean(info)), flush=True)
    dist.barrier()
    dist.close()


def step_same_seed(ck: Check) -> None:
    """The same seed rendered twice in one process: the same frames, bit for bit?"""
    from mocohd_cli import render_frames
    from mocohd_cli.render import DTYPES

    s = ck.sizes["same_seed"]
    G = ck.generator(s["resolution"])
    M = ck.motion(G)
    for name in ("fp32", "bf16"):
        r = ck.row(case=f"{s['resolution']} px {name}", videos=s["videos"], frames=s["frames"])
        a, b = (list(render_frames(M, G, s["frames"], videos=s["videos"], seed=3, dtype=DTYPES[name])) for _ in "ab")
        diff = max(int((x.int() - y.int()).abs().max()) for x, y in zip(a, b, strict=True))
        r.update(bitwise_equal=diff == 0, max_level_diff=diff)
        ck.emit(r, "ok" if diff == 0 else "differs")


def step_resume(ck: Check) -> None:
    """train() for 2 steps against 1 step then a resume to 2: the same motion model and discriminators?"""
    from mocohd_cli.data.procedural import write_dataset
    from mocohd_cli.formats.canonical import save_model
    from mocohd_cli.train import TrainConfig, load_checkpoint, train

    s = ck.sizes["resume"]
    r = ck.row(batch=s["batch"], frames=s["frames"], frame_size=s["frame_size"], precision="auto")
    G = ck.generator(s["resolution"])
    gpath = ck.work / f"g{s['resolution']}.safetensors"
    save_model(
        gpath, {k: v.cpu() for k, v in G.state_dict().items()}, kind="image", family="stylegan2", config=G.cfg.to_dict()
    )
    data = write_dataset(ck.work / "resume-heads", videos=4, frames=2 * s["frames"] + 4, size=s["frame_size"], seed=0)
    base = dict(data=str(data), image=str(gpath), batch=s["batch"], frames=s["frames"], frame_size=s["frame_size"])
    base.update(time_step=2, h_dim=s["h_dim"], pca_samples=s["pca_samples"], workers=0, device=str(ck.device))
    base.update(save_every=1, sample_every=10**6, sample_videos=1, log_every=1, **s["nets"])
    t = time.perf_counter()
    straight = train(TrainConfig(name="straight", steps=2, **base), force=True)
    r["straight_s"] = time.perf_counter() - t
    train(TrainConfig(name="halves", steps=1, **base), force=True)
    halves = train(TrainConfig(name="halves", steps=2, **base), resume=True)
    a, b = (load_checkpoint(x.run / "checkpoint.pt")["gan"] for x in (straight, halves))
    diffs = {
        part: max((float((a[part][k].float() - b[part][k].float()).abs().max()) for k in a[part]), default=0.0)
        for part in ("M", "D_V", "D_I")
    }
    r.update(equal=all(d == 0 for d in diffs.values()), max_abs_diff=diffs, seconds=time.perf_counter() - t)
    ck.emit(r, "ok" if r["equal"] else "differs")


STEP_FUNCS = {
    "preflight": step_preflight,
    "render": step_render,
    "train": step_train,
    "fvd16": step_fvd16,
    "tests": step_tests,
    "dist": step_dist,
    "same_seed": step_same_seed,
    "resume": step_resume,
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: the CPU dry run")
    ap.add_argument("--out", help="output folder (default gpu-check-YYYYMMDD-HHMM/)")
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for the whole check (default 540)")
    ap.add_argument("--wheels", default=str(ROOT / ".gpu-wheels"), help="folder of the WHEELS (default .gpu-wheels/)")
    ap.add_argument("--only", nargs="+", choices=list(STEP_FUNCS), help="run only these steps")
    ap.add_argument("--dist-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dist-mib", type=int, default=64, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.dist_worker:
        dist_worker(args.device, args.dist_mib)
        return 0
    if args.device.startswith("cuda"):
        refuse_missing_gpu(args.device)
    out = Path(args.out or datetime.datetime.now().strftime("gpu-check-%Y%m%d-%H%M")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in ("rows.jsonl", "summary.md", "log.txt", "profile.txt", "tests.txt", "dist.txt"):
        (out / name).unlink(missing_ok=True)  # a rerun into the same folder starts over
    work = Path(tempfile.mkdtemp(prefix="mocohd-gpu-check-"))
    if args.quick and not args.device.startswith("cuda"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny ops on a busy CPU: one thread is faster
    wheels = install_wheels(Path(args.wheels), work / "site")
    user_home = os.environ.get("MOCOHD_HOME")
    os.environ.pop("MOCOHD_DEBUG", None)
    ck = Check(args, out, work)
    ck.step = "machine"
    ck.emit(ck.row(**machine(ck.torch, ck.device, wheels)))
    try:
        from mocohd_cli import store

        ck.cache["user_i3d"] = store.store_path("i3d", "i3d")  # the user's store, before ours replaces it
    except Exception:  # noqa: BLE001 - mocohd not importable: the machine row says why, each step fails alone
        pass
    os.environ["MOCOHD_HOME"] = str(work / "home")  # never the user's store
    try:
        return ck.run()
    finally:
        if user_home is not None:
            os.environ["MOCOHD_HOME"] = user_home
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
