"""GPU readiness check: every CUDA path of mocohd, measured in one run of at most
8 minutes, with a timeout on every step, written as one JSON and one markdown file.

    python benchmarks/gpu_check.py --device cuda                  # the real check (needs a CUDA GPU)
    python benchmarks/gpu_check.py --device cuda --out $OUT/gpu   # ... into a given folder
    python benchmarks/gpu_check.py --device cpu --quick           # the dry run: tiny sizes, < 1 minute on CPU

Offline. Run it from anywhere: mocohd is imported from this checkout (PYTHONPATH), nothing
is installed but the wheels found in ``.gpu-wheels/`` (an ignored folder at the repository
root) whose distributions are missing, e.g. imageio-ffmpeg and pytest on a machine that
has PyTorch, typer, rich, imageio, safetensors and huggingface-hub. Prepare them on a
Linux x86-64 machine that reaches the registry (imageio-ffmpeg 0.6.0's wheel, 29 MB, fits
a 64 MiB carry; the newest, 68 MB, does not; Python 3.10 also needs exceptiongroup and
tomli):

    pip download "imageio-ffmpeg==0.6.0" pytest pluggy iniconfig --no-deps --only-binary=:all: -d .gpu-wheels

The script installs them with ``pip install --no-index --no-deps`` (or, if pip cannot,
unpacks them into its work folder and puts that on PYTHONPATH).

Steps, in order of priority, each in its own process with its own timeout (a hang prints
its Python stacks into ``logs/STEP.log`` and becomes a failed row; nothing stops the
rest): machine, the device-marked tests (``MOCOHD_TEST_DEVICE=cuda python -m pytest -m
device``), measured matmul/conv peaks, StyleGAN2 config f at 256 and 1024 px (batch
1/8/32; fp32, TF32, bf16, fp16; frames/s, share of the peaks, peak memory, PSNR against
fp32), BigGAN-deep 128 (the same), motion training at the authors' sizes (both domains,
precision auto), render to MP4 at 1024 px against generation alone plus the encoders,
``torchrun --nproc_per_node=1 -m mocohd_cli train`` and an NCCL probe, and the levers
(sub-batching, cuDNN autotuning, CUDA graphs, torch.compile) on StyleGAN2 1024 px bf16
batch 8. Steps that
would start after the budget (--budget, 480 s) are recorded as skipped.

Output (``--out``, default ``gpu-check-YYYYMMDD-HHMM/``): ``results.json`` (every row,
every step's status), ``results.md`` (one table per section, for benchmarks/RESULTS.md),
``logs/``. Both files are rewritten after every step, so a killed run keeps what it
measured. ``--device cuda`` with no visible GPU fails at once: one line, exit code 1.
"""

from __future__ import annotations

import argparse
import datetime
import faulthandler
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from contextlib import contextmanager
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DTYPE_NAMES = ("fp32", "tf32", "bf16", "fp16")

# Sizes of the real check and of the dry run (--quick).
FULL = dict(
    sg_resolutions=[256, 1024],
    sg_batches=[1, 8, 32],
    dtypes=list(DTYPE_NAMES),
    min_time=0.4,
    max_iters=200,
    peak_mm=8192,
    peak_conv=(16, 512, 64),
    peak_time=0.3,
    biggan_batches=[1, 8, 32],
    lever=dict(resolution=1024, dtype="bf16", batch=8),
    compile_backend="inductor",
    train=dict(steps=8, videos=8, video_frames=32, video_size=64, workers=2, pca_samples=100_000, resolution=256),
    torchrun_steps=3,
    render=dict(resolution=1024, frames=64, batch=8, dtypes=["fp32", "bf16"], pca_samples=20_000),
    eval=dict(i3d_scale=1.0, inception_size=299, i3d_batches=[8, 32], inception_batches=[32, 128], fvd_videos=256),
)
QUICK = dict(
    sg_resolutions=[16, 32],
    sg_batches=[1, 2],
    dtypes=list(DTYPE_NAMES),
    min_time=0.02,
    max_iters=3,
    peak_mm=256,
    peak_conv=(1, 64, 32),
    peak_time=0.02,
    biggan_batches=[1, 2],
    lever=dict(resolution=16, dtype="bf16", batch=2),
    compile_backend="eager",
    train=dict(steps=2, videos=2, video_frames=8, video_size=16, workers=0, pca_samples=1000, resolution=16),
    torchrun_steps=2,
    render=dict(resolution=16, frames=8, batch=4, dtypes=["fp32", "bf16"], pca_samples=1000),
    eval=dict(i3d_scale=1 / 16, inception_size=75, i3d_batches=[2], inception_batches=[2], fvd_videos=4),
)
# the dry run's training sizes (the real check uses TrainConfig's defaults: the authors')
TINY_TRAIN = dict(
    batch=2, frames=4, time_step=2, frame_size=16, h_dim=16, dv_channels=4, di_channels=8, proj_dim=8, queue=8
)

# (name, timeout of the real check, timeout of the dry run), in order of priority
STEPS = [
    ("machine", 90, 60),
    ("tests", 150, 120),
    ("peak", 60, 40),
    ("stylegan2-lo", 100, 40),
    ("stylegan2-hi", 150, 40),
    ("biggan", 80, 40),
    ("train-cross", 150, 60),
    ("train-in", 120, 60),
    ("render", 120, 60),
    ("torchrun", 120, 60),
    ("levers", 90, 40),
    ("compile", 180, 60),
    ("eval", 150, 60),
]
SECTIONS = [
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
    "eval",
]
HIDDEN = {"step", "memory"}  # in the JSON, not in the tables
COLUMNS = {  # preferred column order per section (others follow)
    "goals": ["goal", "measured", "met"],
    "steps": ["step", "status", "seconds", "timeout_s", "note"],
    "peak": ["dtype", "matmul_tflops", "conv_tflops", "matmul_shape", "conv_shape"],
    "stylegan2": [
        "resolution",
        "batch",
        "dtype",
        "fps",
        "ms_per_batch",
        "gflop_per_frame",
        "tflops",
        "pct_matmul_peak",
        "pct_conv_peak",
        "peak_mb",
        "activation_mb",
        "psnr_db",
    ],
    "biggan": [
        "resolution",
        "batch",
        "dtype",
        "fps",
        "ms_per_batch",
        "gflop_per_frame",
        "tflops",
        "pct_matmul_peak",
        "pct_conv_peak",
        "peak_mb",
        "activation_mb",
        "psnr_db",
    ],
    "train": [
        "domain",
        "precision",
        "steps_per_s",
        "s_per_step",
        "timed_steps",
        "first_step_s",
        "setup_s",
        "peak_mb",
        "batch",
        "frames",
        "frame_size",
        "h_dim",
        "generator",
        "losses_finite",
    ],
    "torchrun": ["what", "ok", "backend", "world", "wall_s", "it_s", "steps"],
    "render": [
        "dtype",
        "frames",
        "resolution",
        "generate_fps",
        "render_fps",
        "render_vs_generate",
        "encode_only_fps",
        "bottleneck",
        "peak_mb",
    ],
    "encoders": ["encoder", "ok", "fps", "seconds", "frames", "ffmpeg"],
    "eval": [
        "what",
        "batch",
        "items_per_s",
        "unit",
        "gflop_per_item",
        "tflops",
        "max_rel_diff_vs_cpu",
        "seconds",
        "peak_mb",
    ],
    "levers": [
        "variant",
        "resolution",
        "dtype",
        "batch",
        "ms_per_batch",
        "fps",
        "vs_eager",
        "compile_s",
        "max_abs_diff",
        "graph_breaks",
        "peak_mb",
    ],
}


# ============================================================================
# Small helpers (no torch at import: the orchestrator checks the GPU before anything else)


def now_iso() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def clean(v):
    """JSON-safe: non-finite floats as strings, tuples as lists, unknown objects as text."""
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)


def first_line(e: BaseException, limit: int = 300) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return (text[0] if text else type(e).__name__)[:limit]


def tail(path: Path, lines: int = 6, limit: int = 600) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(x.strip() for x in text[-lines:])[-limit:]


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        a = abs(v)
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return " ".join(fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k} {fmt(x)}" for k, x in v.items())
    return str(v).replace("|", "/").replace("\n", " ")


# ============================================================================
# Step processes: each measurement records rows as it goes (rows/STEP.jsonl)


class Ctx:
    def __init__(self, args):
        import torch

        self.torch = torch
        self.args = args
        self.quick = args.quick
        self.size = QUICK if args.quick else FULL
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.out = Path(args.out)
        self.work = Path(args.work)
        self.rows_path = self.out / "rows" / f"{args.step}.jsonl"
        self.rows_path.parent.mkdir(parents=True, exist_ok=True)
        if self.cuda and self.device.index is not None:
            torch.cuda.set_device(self.device)
        # cuDNN autotuning stays off (PyTorch's default, and what rendering runs with); the peaks
        # turn it on, and the levers measure it

    def emit(self, section: str, row: dict) -> None:
        with open(self.rows_path, "a") as f:
            f.write(json.dumps(clean({"section": section, **row})) + "\n")
            f.flush()

    @contextmanager
    def record(self, section: str, **base):
        """A row that is emitted even when its measurement fails (with the error)."""
        row = dict(base)
        try:
            yield row
        except Exception as e:  # noqa: BLE001 - every failure becomes a row
            row["error"] = first_line(e)
            traceback.print_exc()
            if self.cuda:
                self.torch.cuda.empty_cache()
        self.emit(section, row)

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def reset_memory(self) -> int:
        if not self.cuda:
            return 0
        self.sync()
        self.torch.cuda.reset_peak_memory_stats(self.device)
        return self.torch.cuda.memory_allocated(self.device)

    def memory(self, base: int = 0) -> dict:
        if self.cuda:
            peak = self.torch.cuda.max_memory_allocated(self.device)
            return {"peak_mb": peak / 2**20, "activation_mb": (peak - base) / 2**20}
        import resource

        return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "memory": "process max RSS"}

    def time_fn(
        self,
        fn,
        warmup: int = 2,
        min_iters: int = 3,
        min_time: float | None = None,
        max_iters: int | None = None,
        best: bool = False,
    ):
        """Seconds per call (median, or best) and the last output. CUDA: events around each call."""
        torch = self.torch
        min_time = self.size["min_time"] if min_time is None else min_time
        max_iters = self.size["max_iters"] if max_iters is None else max_iters
        out = None
        for _ in range(warmup):
            out = fn()
        self.sync()
        times = []
        t_end = time.perf_counter() + min_time
        while len(times) < min_iters or (time.perf_counter() < t_end and len(times) < max(max_iters, min_iters)):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1000)
            else:
                t0 = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - t0)
        return (min(times) if best else statistics.median(times)), out


def set_tf32(torch, on: bool) -> None:
    """TF32 for float32 matmuls and cuDNN convolutions (no effect off CUDA)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def compute_dtype(torch, name: str):
    return {"fp32": None, "tf32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def psnr(torch, out, ref) -> dict:
    out, ref = out.float(), ref.float()
    bad = int((~torch.isfinite(out)).sum())
    if bad:
        return {"psnr_db": None, "nonfinite": bad}
    mse = (out - ref).square().mean().item()
    peak = (ref.max() - ref.min()).item()
    return {
        "psnr_db": 10 * math.log10(peak**2 / mse) if mse > 0 else float("inf"),
        "max_abs_diff": (out - ref).abs().max().item(),
    }


def counted_gflop(torch, fn) -> float | None:
    """FLOPs of one call as torch's FlopCounterMode counts them (convolutions, matmuls, attention)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            fn()
        return fc.get_total_flops() / 1e9
    except Exception:  # noqa: BLE001 - only a cross-check
        traceback.print_exc()
        return None


def stylegan2_formula():
    """bench_generator.synthesis_flops (RESULTS.md's count), or None."""
    try:
        sys.path.insert(0, str(HERE))
        from bench_generator import synthesis_flops

        return synthesis_flops
    except Exception:  # noqa: BLE001 - shown, and the step goes on without it
        traceback.print_exc()
        return None


def sg2_config(resolution: int, quick: bool):
    from mocohd_cli.generators import StyleGAN2Config

    if quick:
        return StyleGAN2Config(
            resolution=resolution, z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64
        )
    return StyleGAN2Config.preset("f", resolution)


def sg2_generator(ctx: Ctx, resolution: int):
    from mocohd_cli.generators import StyleGAN2Generator

    ctx.torch.manual_seed(0)
    return StyleGAN2Generator(sg2_config(resolution, ctx.quick)).eval().requires_grad_(False).to(ctx.device)


# ---------------------------------------------------------------------------- machine


def run_quiet(cmd, timeout=30) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, first_line(e)


def ffmpeg_info() -> dict:
    info = {}
    try:
        import imageio_ffmpeg

        info["imageio_ffmpeg"] = getattr(imageio_ffmpeg, "__version__", "?")
        exe = imageio_ffmpeg.get_ffmpeg_exe()
        info["ffmpeg"] = exe
    except Exception as e:  # noqa: BLE001 - reported in the table
        info["imageio_ffmpeg"] = f"missing ({first_line(e)})"
        exe = None
    for key, path in (("ffmpeg", exe), ("system_ffmpeg", shutil.which("ffmpeg"))):
        if not path:
            continue
        rc, text = run_quiet([path, "-hide_banner", "-version"], 20)
        info[f"{key}_version"] = text.splitlines()[0][:80] if rc == 0 and text else f"not runnable: {text[:100]}"
        rc, text = run_quiet([path, "-hide_banner", "-encoders"], 20)
        info[f"{key}_h264_nvenc"] = rc == 0 and "h264_nvenc" in text
        info[f"{key}_hevc_nvenc"] = rc == 0 and "hevc_nvenc" in text
    info.setdefault("system_ffmpeg", shutil.which("ffmpeg"))
    return info


def step_machine(ctx: Ctx) -> None:
    torch = ctx.torch
    with ctx.record("machine") as row:
        row.update(
            python=platform.python_version(),
            platform=platform.platform(),
            cpus=os.cpu_count(),
            torch=torch.__version__,
            torch_cuda=torch.version.cuda,
            threads=torch.get_num_threads(),
        )
        try:
            with open("/proc/cpuinfo") as f:
                row["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            row["cpu"] = platform.processor()
        if ctx.cuda:
            p = torch.cuda.get_device_properties(ctx.device)
            row.update(
                gpu=p.name,
                capability=f"{p.major}.{p.minor}",
                gpu_memory_gb=p.total_memory / 2**30,
                sms=p.multi_processor_count,
                gpus=torch.cuda.device_count(),
                cudnn=torch.backends.cudnn.version(),
                bf16_supported=torch.cuda.is_bf16_supported(),
            )
            try:
                row["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
            except Exception as e:  # noqa: BLE001 - reported in the table
                row["nccl"] = f"unknown ({first_line(e, 80)})"
            rc, text = run_quiet(
                ["nvidia-smi", "--query-gpu=driver_version,power.limit,clocks.max.sm", "--format=csv,noheader"], 20
            )
            row["nvidia_smi"] = text.strip().splitlines()[0] if rc == 0 and text.strip() else None
        row.update(
            default_matmul_tf32=torch.backends.cuda.matmul.allow_tf32,
            default_cudnn_tf32=torch.backends.cudnn.allow_tf32,
            default_cudnn_benchmark=torch.backends.cudnn.benchmark,
        )
        import mocohd_cli

        row["mocohd"] = mocohd_cli.__version__
        rc, text = run_quiet(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], 10)
        row["commit"] = text.strip() if rc == 0 else None
        rc, text = run_quiet(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], 10)
        row["dirty"] = bool(text.strip()) if rc == 0 else None
        row.update(ffmpeg_info())


# ---------------------------------------------------------------------------- peaks


def step_peak(ctx: Ctx) -> None:
    import torch.nn.functional as F

    torch = ctx.torch
    torch.backends.cudnn.benchmark = True  # a peak is the best the library can do
    n = ctx.size["peak_mm"]
    b, c, r = ctx.size["peak_conv"]
    for name in ctx.size["dtypes"]:
        with ctx.record("peak", dtype=name) as row:
            dt = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name, torch.float32)
            set_tf32(torch, name == "tf32")
            a = torch.randn(n, n, device=ctx.device, dtype=dt)
            bm = torch.randn(n, n, device=ctx.device, dtype=dt)
            t, _ = ctx.time_fn(
                lambda a=a, bm=bm: torch.mm(a, bm),
                warmup=3,
                min_iters=5,
                min_time=ctx.size["peak_time"],
                max_iters=1000,
                best=True,
            )
            row.update(matmul_tflops=2 * n**3 / t / 1e12, matmul_shape=f"{n}x{n}")
            x = torch.randn(b, c, r, r, device=ctx.device, dtype=dt).contiguous(memory_format=torch.channels_last)
            w = torch.randn(c, c, 3, 3, device=ctx.device, dtype=dt)
            t, _ = ctx.time_fn(
                lambda x=x, w=w: F.conv2d(x, w, padding=1),
                warmup=3,
                min_iters=5,
                min_time=ctx.size["peak_time"],
                max_iters=1000,
                best=True,
            )
            row.update(conv_tflops=2 * b * r * r * 9 * c * c / t / 1e12, conv_shape=f"{b}x{c}x{r}x{r} 3x3")
    set_tf32(torch, False)


# ---------------------------------------------------------------------------- StyleGAN2 and BigGAN


def measure_generator(
    ctx: Ctx, section: str, resolution: int, batches, synth, make_inputs, gflop: float | None, counted: float | None
) -> None:
    """Frames/s, memory and PSNR against fp32 for each batch and dtype (fp32 first: the reference)."""
    torch = ctx.torch
    for batch in batches:
        inputs = make_inputs(batch)
        ref = None
        for name in ctx.size["dtypes"]:
            with ctx.record(section, resolution=resolution, batch=batch, dtype=name) as row:
                set_tf32(torch, name == "tf32")
                dt = compute_dtype(torch, name)
                base = ctx.reset_memory()
                with torch.no_grad():
                    t, out = ctx.time_fn(lambda inputs=inputs, dt=dt: synth(inputs, dt))
                row.update(fps=batch / t, ms_per_batch=t * 1000, gflop_per_frame=gflop, gflop_counted=counted)
                if gflop:
                    row["tflops"] = gflop * batch / t / 1000
                row.update(ctx.memory(base))
                if name == "fp32":
                    ref = out
                elif ref is not None:
                    row.update(psnr(torch, out, ref))
                del out
        ref = inputs = None  # free before the next batch
        if ctx.cuda:
            torch.cuda.empty_cache()
    set_tf32(torch, False)


def step_stylegan2(ctx: Ctx, which: str) -> None:
    torch = ctx.torch
    resolution = ctx.size["sg_resolutions"][0 if which == "lo" else 1]
    G = sg2_generator(ctx, resolution)
    formula = stylegan2_formula()
    gflop = formula(G.cfg) / 1e9 if formula else None
    w1 = G.mapping(torch.randn(1, G.z_dim, device=ctx.device))
    counted = counted_gflop(torch, lambda: G.synthesis(w1))
    if gflop is None:
        gflop = counted

    def make_inputs(batch):
        z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(1)).to(ctx.device)
        with torch.no_grad():
            return G.mapping(z)

    measure_generator(
        ctx,
        "stylegan2",
        resolution,
        ctx.size["sg_batches"],
        lambda w, dt: G.synthesis(w, noise_mode="const", dtype=dt),
        make_inputs,
        gflop,
        counted,
    )


def biggan_config(quick: bool):
    from mocohd_cli.generators import BigGANConfig

    if quick:
        return BigGANConfig(
            resolution=32,
            z_dim=8,
            embed_dim=8,
            channel_width=8,
            n_stats=5,
            attention=4,
            layers=[[False, 16, 16], [True, 16, 8], [False, 8, 4], [True, 4, 2], [False, 2, 1], [True, 1, 1]],
        )
    return BigGANConfig()  # BigGAN-deep 128


def step_biggan(ctx: Ctx) -> None:
    import torch.nn.functional as F

    from mocohd_cli.generators import BigGANGenerator

    torch = ctx.torch
    cfg = biggan_config(ctx.quick)
    torch.manual_seed(0)
    G = BigGANGenerator(cfg).eval().requires_grad_(False).to(ctx.device)
    t = 0.4

    def make_inputs(batch):
        g = torch.Generator().manual_seed(1)
        w = G.mapping(torch.randn(batch, cfg.z_dim, generator=g), truncation_psi=t).to(ctx.device)
        c = F.one_hot(torch.randint(cfg.num_classes, (batch,), generator=g), cfg.num_classes).float().to(ctx.device)
        return w, c

    w1, c1 = make_inputs(1)
    counted = counted_gflop(torch, lambda: G.synthesis(w1, c1, truncation=t))
    measure_generator(
        ctx,
        "biggan",
        cfg.resolution,
        ctx.size["biggan_batches"],
        lambda wc, dt: G.synthesis(wc[0], wc[1], truncation=t, dtype=dt),
        make_inputs,
        counted,
        counted,
    )


# ---------------------------------------------------------------------------- levers


def step_levers(ctx: Ctx) -> None:
    """Sub-batching on/off and CUDA graphs (torch.cuda.CUDAGraph) on StyleGAN2 synthesis."""
    torch = ctx.torch
    lv = ctx.size["lever"]
    G = sg2_generator(ctx, lv["resolution"])
    dt = compute_dtype(torch, lv["dtype"])
    syn = G.synthesis
    default_ws = syn.working_set_bytes
    z = torch.randn(lv["batch"], G.z_dim, generator=torch.Generator().manual_seed(1)).to(ctx.device)
    with torch.no_grad():
        w = G.mapping(z)
    base = dict(resolution=lv["resolution"], dtype=lv["dtype"], batch=lv["batch"])
    eager = {}
    for sub in (True, False):
        name = "eager" if sub else "eager-no-sub-batch"
        with ctx.record("levers", variant=name, **base) as row:
            syn.working_set_bytes = default_ws if sub else 0
            mem = ctx.reset_memory()
            with torch.no_grad():
                t, out = ctx.time_fn(lambda: syn(w, dtype=dt))
            eager[name] = (t, out)
            row.update(ms_per_batch=t * 1000, fps=lv["batch"] / t, vs_eager=t / eager["eager"][0], **ctx.memory(mem))
            if name != "eager":
                row["max_abs_diff"] = (out - eager["eager"][1]).abs().max().item()
    with ctx.record("levers", variant="eager-cudnn-benchmark", **base) as row:
        syn.working_set_bytes = default_ws
        ctx.torch.backends.cudnn.benchmark = True
        try:
            mem = ctx.reset_memory()
            with torch.no_grad():
                t, out = ctx.time_fn(lambda: syn(w, dtype=dt), warmup=3)
        finally:
            ctx.torch.backends.cudnn.benchmark = False
        row.update(
            ms_per_batch=t * 1000,
            fps=lv["batch"] / t,
            vs_eager=t / eager["eager"][0],
            max_abs_diff=(out - eager["eager"][1]).abs().max().item(),
            **ctx.memory(mem),
        )
    for sub in (True, False):
        name = "cuda-graph" if sub else "cuda-graph-no-sub-batch"
        with ctx.record("levers", variant=name, **base) as row:
            if not ctx.cuda:
                row["skipped"] = "CUDA only"
                continue
            syn.working_set_bytes = default_ws if sub else 0
            mem = ctx.reset_memory()
            static_w = w.clone()
            with torch.no_grad():
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):  # warm-up off the capture stream (cuDNN plans, caches)
                    for _ in range(3):
                        syn(static_w, dtype=dt)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                t0 = time.perf_counter()
                with torch.cuda.graph(graph):
                    static_out = syn(static_w, dtype=dt)
                row["capture_s"] = time.perf_counter() - t0
            t, _ = ctx.time_fn(graph.replay)
            ref = eager["eager" if sub else "eager-no-sub-batch"]
            row.update(
                ms_per_batch=t * 1000,
                fps=lv["batch"] / t,
                vs_eager=t / eager["eager"][0],
                max_abs_diff=(static_out - ref[1]).abs().max().item(),
                **ctx.memory(mem),
            )
            graph = static_out = None  # its memory pool goes with it
    syn.working_set_bytes = default_ws


def step_compile(ctx: Ctx) -> None:
    """torch.compile of StyleGAN2 synthesis: compile time, steady state, graph breaks."""
    torch = ctx.torch
    lv = ctx.size["lever"]
    G = sg2_generator(ctx, lv["resolution"])
    default_ws = G.synthesis.working_set_bytes
    dt = compute_dtype(torch, lv["dtype"])
    z = torch.randn(lv["batch"], G.z_dim, generator=torch.Generator().manual_seed(1)).to(ctx.device)
    with torch.no_grad():
        w = G.mapping(z)
    base = dict(resolution=lv["resolution"], dtype=lv["dtype"], batch=lv["batch"])
    with torch.no_grad():
        t_eager, ref = ctx.time_fn(lambda: G.synthesis(w, dtype=dt))
    ctx.emit(
        "levers",
        {
            "variant": "eager (compile step's baseline)",
            **base,
            "ms_per_batch": t_eager * 1000,
            "fps": lv["batch"] / t_eager,
            "vs_eager": 1.0,
        },
    )
    backend = ctx.size["compile_backend"]
    # the smaller graph first (no sub-batches: one pass per block), then the default, then CUDA graphs too
    variants = [
        ("compile-no-sub-batch", dict(backend=backend), False),
        ("compile", dict(backend=backend), True),
        ("compile-reduce-overhead", dict(mode="reduce-overhead"), False),
    ]
    if ctx.quick:  # the dry run traces one (tracing costs seconds on a CPU); the others are CUDA's
        variants = [v for v in variants if v[0] != "compile"]
    for name, kw, sub in variants:
        with ctx.record("levers", variant=name, **base, backend=kw.get("backend", "inductor")) as row:
            if "mode" in kw and not ctx.cuda:
                row["skipped"] = "CUDA only (CUDA graphs)"
                continue
            from torch._dynamo.utils import counters

            torch._dynamo.reset()
            counters.clear()
            G.synthesis.working_set_bytes = default_ws if sub else 0
            compiled = torch.compile(G.synthesis, **kw)
            step_begin = getattr(torch.compiler, "cudagraph_mark_step_begin", None) if "mode" in kw else None

            def fn(compiled=compiled, step_begin=step_begin):
                if step_begin:  # CUDA graph trees: each call is a new step (outputs of the last may go)
                    step_begin()
                return compiled(w, dtype=dt)

            mem = ctx.reset_memory()
            with torch.no_grad():
                t0 = time.perf_counter()
                fn()
                ctx.sync()
                row["compile_s"] = time.perf_counter() - t0
                t, out = ctx.time_fn(fn)
            breaks = counters.get("graph_break", {})
            row.update(
                ms_per_batch=t * 1000,
                fps=lv["batch"] / t,
                vs_eager=t / t_eager,
                max_abs_diff=(out.float() - ref.float()).abs().max().item(),
                graph_breaks=sum(breaks.values()),
                graphs=counters.get("stats", {}).get("unique_graphs"),
                first_break=next(iter(breaks), "").strip().splitlines()[0][:120] if breaks else None,
                **ctx.memory(mem),
            )


# ---------------------------------------------------------------------------- training


def ensure_training_inputs(ctx: Ctx) -> tuple[Path, Path]:
    """A StyleGAN2 (config f at 256 px; tiny for --quick) saved as a canonical file, and a
    procedural talking-head dataset; made once per work folder, shared by the training steps."""
    from mocohd_cli.data.procedural import write_dataset
    from mocohd_cli.formats.canonical import save_model
    from mocohd_cli.generators import StyleGAN2Generator

    tr = ctx.size["train"]
    gpath = ctx.work / f"stylegan2-{tr['resolution']}.safetensors"
    if not gpath.is_file():
        ctx.torch.manual_seed(0)
        G = StyleGAN2Generator(sg2_config(tr["resolution"], ctx.quick))
        save_model(gpath, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
    data = ctx.work / "heads"
    done = data / ".complete"
    if not done.is_file():
        write_dataset(data, tr["videos"], tr["video_frames"], tr["video_size"], seed=0)
        done.write_text("ok\n")
    return gpath, data


def step_train(ctx: Ctx, domain: str) -> None:
    from mocohd_cli.train import TrainConfig, train

    tr = ctx.size["train"]
    gpath, data = ensure_training_inputs(ctx)
    sizes = dict(TINY_TRAIN) if ctx.quick else {}  # else TrainConfig's defaults: the authors' sizes
    with ctx.record("train", domain=domain, generator=f"{tr['resolution']} px") as row:
        cfg = TrainConfig(
            data=str(data),
            image=str(gpath),
            name=f"gpucheck-{domain}",
            domain=domain,
            steps=tr["steps"],
            device=str(ctx.device),
            precision="auto",
            workers=tr["workers"],
            pca_samples=tr["pca_samples"],
            log_every=1,
            save_every=10**6,
            sample_every=10**6,
            sample_videos=1,
            **sizes,
        )
        row.update(batch=cfg.batch, frames=cfg.frames, h_dim=cfg.h_dim, frame_size=cfg.frame_size or "auto")
        marks, info = [], {}

        def on_event(kind, ev):
            if kind == "start":
                info["start"] = time.perf_counter()
                info.update(precision=ev.get("precision"), frame_size=ev.get("frame_size"), world=ev.get("world"))
            elif kind == "step":
                marks.append(time.perf_counter())
                info["losses"] = ev.get("losses") or {}

        base = ctx.reset_memory()
        t0 = time.perf_counter()
        try:
            result = train(cfg, force=True, on_event=on_event)
            info["losses"] = getattr(result, "losses", None) or info.get("losses", {})
        finally:  # the timing survives a failure after the steps (checkpoint, sample video)
            row.update(
                precision=info.get("precision"),
                frame_size=info.get("frame_size", row["frame_size"]),
                setup_s=info["start"] - t0 if "start" in info else None,
                steps=len(marks),
            )
            if marks and "start" in info:
                row["first_step_s"] = marks[0] - info["start"]
            if len(marks) >= 2:
                span = marks[-1] - marks[0]
                row.update(
                    timed_steps=len(marks) - 1, s_per_step=span / (len(marks) - 1), steps_per_s=(len(marks) - 1) / span
                )
            losses = info.get("losses") or {}
            row["losses_finite"] = bool(losses) and all(math.isfinite(float(v)) for v in losses.values())
            row["losses"] = {k: round(float(v), 4) for k, v in losses.items()}
            row.update(ctx.memory(base))
            row["total_s"] = time.perf_counter() - t0


def nccl_probe(args) -> None:
    """Run under torchrun: a process group (NCCL on CUDA, gloo on CPU) and its collectives."""
    import torch
    import torch.distributed as td

    device = torch.device(args.device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    t0 = time.perf_counter()
    td.init_process_group(backend)
    x = torch.ones(1 << 20, device=device)
    td.all_reduce(x)
    gathered = [None] * td.get_world_size()
    td.all_gather_object(gathered, {"rank": td.get_rank()})
    td.barrier()
    ok = bool(x[0].item() == td.get_world_size()) and len(gathered) == td.get_world_size()
    print(
        json.dumps(
            {"backend": td.get_backend(), "world": td.get_world_size(), "ok": ok, "seconds": time.perf_counter() - t0}
        )
    )
    td.destroy_process_group()


def step_torchrun(ctx: Ctx) -> None:
    """``torchrun --nproc_per_node=1 -m mocohd_cli train`` for a few steps, and an NCCL probe."""
    tr = ctx.size["train"]
    gpath, data = ensure_training_inputs(ctx)
    probe_timeout = min(30.0, 0.25 * ctx.args.step_timeout)
    train_timeout = max(10.0, ctx.args.step_timeout - probe_timeout - 8)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    name = "gpucheck-torchrun"
    cmd = launcher + [
        "-m",
        "mocohd_cli",
        "train",
        "--data",
        str(data),
        "--image",
        str(gpath),
        "--name",
        name,
        "--force",
        "--steps",
        str(ctx.size["torchrun_steps"]),
        "--device",
        str(ctx.device),
        "--log-every",
        "1",
        "--sample-videos",
        "1",
        "--workers",
        str(tr["workers"]),
        "--pca-samples",
        str(tr["pca_samples"]),
    ]
    if not ctx.quick:
        cmd += ["--batch", "4"]  # a path check: the authors' sizes but a smaller batch
    if ctx.quick:
        for k, v in TINY_TRAIN.items():
            if k != "proj_dim":  # not a command-line option
                cmd += [f"--{k.replace('_', '-')}", str(v)]
    with ctx.record("torchrun", what="torchrun -m mocohd_cli train", world=1) as row:
        row["command"] = " ".join(cmd[1:]).replace(str(ctx.work), "WORK")
        log = ctx.out / "logs" / "torchrun-train.log"
        rc, wall = run_logged(cmd, log, timeout=train_timeout)
        row.update(ok=rc == 0, rc=rc, wall_s=wall, backend="none: world 1 runs without a process group")
        metrics = Path(os.environ["MOCOHD_HOME"]) / "runs" / name / "metrics.jsonl"
        if metrics.is_file():
            lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
            lines = [x for x in lines if "it_s" in x]  # the loss records (--log-every 1: one per step)
            row["steps"] = max((x.get("step", 0) for x in lines), default=0)
            its = [x["it_s"] for x in lines[1:]] or [x["it_s"] for x in lines]
            if its:
                row["it_s"] = statistics.median(its)
        if rc != 0:
            row["error"] = tail(log, 3)
    with ctx.record(
        "torchrun",
        what="NCCL probe (all_reduce, all_gather_object, barrier)"
        if ctx.cuda
        else "gloo probe (all_reduce, all_gather_object, barrier)",
    ) as row:
        log = ctx.out / "logs" / "torchrun-probe.log"
        cmd = launcher + [str(Path(__file__).resolve()), "--nccl-probe", "--device", str(ctx.device)]
        rc, wall = run_logged(cmd, log, timeout=probe_timeout)
        row.update(rc=rc, wall_s=wall, ok=False)
        for line in reversed(log.read_text(errors="replace").splitlines() if log.is_file() else []):
            if line.startswith("{"):
                try:
                    row.update(json.loads(line))
                    break
                except ValueError:
                    continue
        if rc != 0:
            row["error"] = tail(log, 3)


# ---------------------------------------------------------------------------- render


def _note_start(started: dict, total: int, note: str | None) -> None:
    """render's ``on_start``: when its first frame's work began."""
    started.setdefault("t", time.perf_counter())


def step_render(ctx: Ctx) -> None:
    """render() to MP4 at 1024 px against render_frames alone, and the encoders on the same frames."""
    import numpy as np

    from mocohd_cli import load_image_generator, load_motion, render_frames
    from mocohd_cli.formats.canonical import save_model
    from mocohd_cli.generators import StyleGAN2Generator
    from mocohd_cli.loaders.motion_models import save_motion
    from mocohd_cli.motion import MotionConfig, MotionGenerator
    from mocohd_cli.pca import fit_pca
    from mocohd_cli.render import DTYPES, RenderConfig, render
    from mocohd_cli.video import write_videos

    torch = ctx.torch
    rd = ctx.size["render"]
    res, frames, batch = rd["resolution"], rd["frames"], rd["batch"]
    gpath = ctx.work / f"render-g{res}.safetensors"
    mpath = ctx.work / f"render-m{res}.safetensors"
    if not (gpath.is_file() and mpath.is_file()):
        torch.manual_seed(0)
        G = StyleGAN2Generator(sg2_config(res, ctx.quick)).eval()
        head = save_model(gpath, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
        basis = fit_pca(G.to(ctx.device), samples=rd["pca_samples"])
        n = min(384, G.w_dim)
        M = MotionGenerator(
            MotionConfig(w_dim=G.w_dim, noise_dim=G.w_dim, n_pca=n), basis.components[:n], basis.stdev[:n]
        )
        save_motion(mpath, M, image={"image_name": "gpucheck", "image_sha256": head.weights_sha256})
        del G, M
    G = load_image_generator(str(gpath), device=ctx.device)
    M = load_motion(str(mpath), device=ctx.device)
    kept = None
    for name in rd["dtypes"]:
        with ctx.record("render", dtype=name, frames=frames, resolution=res, batch=batch) as row:
            dt = DTYPES[name]
            list(render_frames(M, G, min(frames, 17), batch=batch, dtype=dt))  # warm-up: both batch shapes
            base = ctx.reset_memory()
            t0 = time.perf_counter()
            got = [f.numpy() for f in render_frames(M, G, frames, batch=batch, dtype=dt)]
            gen = time.perf_counter() - t0
            row.update(generate_fps=len(got) / gen, **ctx.memory(base))
            started = {}
            out = ctx.work / f"render-{name}.mp4"
            t0 = time.perf_counter()
            r = render(
                out,
                RenderConfig(
                    motion=str(mpath), image=str(gpath), frames=frames, device=str(ctx.device), dtype=name, batch=batch
                ),
                on_start=partial(_note_start, started),
            )
            t1 = time.perf_counter()
            rend = t1 - started.get("t", t0)
            row.update(
                render_fps=r.frames / rend,
                render_wall_s=t1 - t0,
                render_vs_generate=(r.frames / rend) / (len(got) / gen),
                mp4_mb=out.stat().st_size / 2**20 if out.is_file() else None,
            )
            t0 = time.perf_counter()
            write_videos(iter(got), ctx.work / f"encode-{name}.mp4", "mp4", 12.0, 1, False)
            enc = time.perf_counter() - t0
            row["encode_only_fps"] = len(got) / enc
            row["bottleneck"] = "encoding" if row["encode_only_fps"] < row["generate_fps"] else "generation"
            kept = got
    if kept is None:
        return
    # the same frames through ffmpeg with other settings: a faster preset, NVENC where ffmpeg has it
    raw = np.concatenate([f.reshape(-1) for f in kept]).tobytes()
    h, w = kept[0].shape[1:3]
    info = ffmpeg_info()
    exes = [info.get("ffmpeg"), info.get("system_ffmpeg")]
    encoders = [
        ("libx264 medium crf 25 (render's)", ["-c:v", "libx264", "-crf", "25"]),
        ("libx264 veryfast crf 25", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "25"]),
        ("libx264 ultrafast crf 25", ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "25"]),
    ]
    nvenc = next(
        (e for e, k in zip(exes, ("ffmpeg", "system_ffmpeg"), strict=True) if e and info.get(f"{k}_h264_nvenc")), None
    )
    if nvenc and not ctx.cuda:
        ctx.emit("encoders", {"encoder": "h264_nvenc", "ok": False, "skipped": "listed, but NVENC needs the GPU"})
    elif nvenc:
        encoders.append(("h264_nvenc p4", ["-c:v", "h264_nvenc", "-preset", "p4"]))
    for label, codec in encoders:
        exe = nvenc if "nvenc" in label else (exes[0] or exes[1])
        with ctx.record("encoders", encoder=label, frames=len(kept), resolution=f"{w}x{h}") as row:
            if not exe:
                row.update(ok=False, skipped="no ffmpeg")
                continue
            cmd = [
                exe,
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-s",
                f"{w}x{h}",
                "-r",
                "12",
                "-i",
                "-",
                "-an",
                *codec,
                "-pix_fmt",
                "yuv420p",
                "-f",
                "mp4",
                str(ctx.work / "encoder-test.mp4"),
            ]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, input=raw, capture_output=True, timeout=60)
            dt = time.perf_counter() - t0
            row.update(ok=p.returncode == 0, seconds=dt, fps=len(kept) / dt, ffmpeg=Path(exe).name)
            if p.returncode:
                row["error"] = p.stderr.decode(errors="replace").strip()[-200:]
    if not nvenc:
        ctx.emit("encoders", {"encoder": "h264_nvenc", "ok": False, "skipped": "no ffmpeg here lists h264_nvenc"})
    (ctx.work / "encoder-test.mp4").unlink(missing_ok=True)


# ============================================================================
# The orchestrator


def run_logged(cmd, log: Path, timeout: float, env=None) -> tuple[int, float]:
    """Run ``cmd`` in its own session, output to ``log``; on timeout its whole process group is
    terminated (then killed). Returns (exit code, or 124 on timeout; seconds)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "ab") as f:
        f.write(f"$ {' '.join(map(str, cmd))}\n".encode())
        f.flush()
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT)
        try:
            rc = p.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            rc = 124
            f.write(f"\n[gpu_check] timed out after {timeout:.0f} s: process group {p.pid} stopped\n".encode())
    return rc, time.perf_counter() - t0


def wheel_dist(path: Path) -> str:
    return re.sub(r"[-_.]+", "-", path.name.split("-")[0]).lower()


def install_wheels(folder: Path, work: Path, env: dict) -> dict:
    """Install the wheels of ``folder`` whose distributions are missing; pip, else unpack onto PYTHONPATH."""
    from importlib import metadata

    info = {"wheels_folder": str(folder), "installed": [], "present": []}
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        info["wheels"] = "none found"
        return info
    missing = []
    for whl in wheels:
        try:
            metadata.distribution(wheel_dist(whl))
            info["present"].append(whl.name)
        except metadata.PackageNotFoundError:
            missing.append(whl)
    if not missing:
        return info
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-index",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
        *map(str, missing),
    ]
    rc, _ = run_logged(cmd, work / "pip.log", timeout=180)
    if rc == 0:
        info["installed"] = [w.name for w in missing]
        info["how"] = "pip install --no-index --no-deps"
        return info
    site = work / "site"
    for whl in missing:  # a wheel is a zip: unpack it, keeping executable bits (the ffmpeg binary)
        with zipfile.ZipFile(whl) as z:
            for item in z.infolist():
                target = z.extract(item, site)
                mode = (item.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(target, mode)
                elif "/binaries/" in item.filename:
                    os.chmod(target, 0o755)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    info.update(
        installed=[w.name for w in missing], how=f"unpacked into {site} (pip failed: {tail(work / 'pip.log', 2)})"
    )
    return info


def fail_fast(device: str) -> None:
    """--device cuda without a visible GPU: one line, exit 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch

        ok = torch.cuda.is_available()
        index = torch.device(device).index
        if ok and index is not None and index >= torch.cuda.device_count():
            print(
                f"error: --device {device} asked but only {torch.cuda.device_count()} CUDA GPU(s) are visible",
                file=sys.stderr,
            )
            raise SystemExit(1)
    if not ok:
        built = torch.version.cuda or "no CUDA"
        print(
            f"error: --device {device} asked but no CUDA GPU is visible (torch {torch.__version__}, built with "
            f"{built})",
            file=sys.stderr,
        )
        raise SystemExit(1)


def add_peak_shares(sections: dict) -> None:
    peaks = {r.get("dtype"): r for r in sections.get("peak", []) if "error" not in r}
    for key in ("stylegan2", "biggan"):
        for r in sections.get(key, []):
            pk = peaks.get(r.get("dtype"))
            if pk and isinstance(r.get("tflops"), float):
                if isinstance(pk.get("matmul_tflops"), float) and pk["matmul_tflops"] > 0:
                    r["pct_matmul_peak"] = 100 * r["tflops"] / pk["matmul_tflops"]
                if isinstance(pk.get("conv_tflops"), float) and pk["conv_tflops"] > 0:
                    r["pct_conv_peak"] = 100 * r["tflops"] / pk["conv_tflops"]


def goals(sections: dict, quick: bool) -> list[dict]:
    """The issue's goals, read off the rows (the dry run's sizes make them meaningless: met is None)."""
    rows = []
    hi = max(FULL["sg_resolutions"] if not quick else QUICK["sg_resolutions"])
    sg = [
        r
        for r in sections.get("stylegan2", [])
        if r.get("resolution") == hi and r.get("dtype") == "bf16" and isinstance(r.get("fps"), float)
    ]
    best = max(sg, key=lambda r: r["fps"], default=None)
    psnr_ok = best is not None and isinstance(best.get("psnr_db"), (float, str)) and float(best["psnr_db"]) >= 40
    rows.append(
        {
            "goal": f"StyleGAN2 {hi} px bf16 >= 500 frames/s batched, PSNR >= 40 dB against fp32",
            "measured": (
                f"{best['fps']:.0f} frames/s at batch {best['batch']}, PSNR {fmt(best.get('psnr_db'))} dB"
                if best
                else "not measured"
            ),
            "met": None if quick or not best else bool(best["fps"] >= 500 and psnr_ok),
        }
    )
    for r in sections.get("render", []):
        if isinstance(r.get("render_vs_generate"), float):
            rows.append(
                {
                    "goal": f"render {r['resolution']} px ({r['dtype']}) within 90% of generation alone",
                    "measured": f"{100 * r['render_vs_generate']:.0f}% ({fmt(r.get('render_fps'))} vs "
                    f"{fmt(r.get('generate_fps'))} frames/s; bottleneck {r.get('bottleneck')})",
                    "met": None if quick else bool(r["render_vs_generate"] >= 0.9),
                }
            )
    for r in sections.get("train", []):
        if isinstance(r.get("s_per_step"), float):
            rows.append(
                {
                    "goal": f"training step ({r['domain']}-domain, batch {r.get('batch')}) >= 2x the authors' "
                    "release on the same GPU",
                    "measured": f"{r['s_per_step']:.3f} s/step ({r.get('precision')}); no authors' figure here",
                    "met": None,
                }
            )
    return rows


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [
        f"# gpu_check: {meta['device']}{' (quick dry run)' if meta['quick'] else ''}",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}; wall {fmt(meta.get('wall_s'))} s of a {meta['budget_s']} s budget.  ",
        "peak_mb: torch.cuda.max_memory_allocated on CUDA (activation_mb: above the weights and inputs), "
        "the process's max RSS on a CPU.",
        "",
    ]
    for name in SECTIONS:
        rows = result["sections"].get(name) if name not in ("setup",) else [result.get("setup", {})]
        if name == "steps":
            rows = result["steps"]
        if not rows:
            continue
        lines += [f"## {name}", ""]
        if name in ("machine", "setup"):
            lines += ["| key | value |", "|---|---|"]
            for k, v in rows[0].items():
                if k != "section" and k not in HIDDEN:
                    lines.append(f"| {k} | {fmt(v)} |")
            lines.append("")
            continue
        cols = [c for c in COLUMNS.get(name, []) if any(c in r for r in rows)]
        for r in rows:
            cols += [k for k in r if k not in cols and k != "section" and k not in HIDDEN]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            lines.append("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
        lines.append("")
    return "\n".join(lines)


def write_results(out: Path, result: dict) -> None:
    add_peak_shares(result["sections"])
    result["sections"]["goals"] = goals(result["sections"], result["meta"]["quick"])
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(clean(result), indent=1) + "\n")
    tmp.replace(out / "results.json")
    tmp = out / ".results.md.tmp"
    tmp.write_text(markdown(result) + "\n")
    tmp.replace(out / "results.md")


def read_rows(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def run_tests(args, out: Path, env: dict, timeout: float) -> tuple[int, float, list[dict], str]:
    """The device-marked tests on the asked device, parsed from JUnit XML."""
    import xml.etree.ElementTree as ET

    junit = out / "logs" / "tests-junit.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "device",
        "-q",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
    ]
    env = {**env, "MOCOHD_TEST_DEVICE": args.device}
    rc, wall = run_logged(cmd, out / "logs" / "tests.log", timeout, env=env)
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failed = []
    try:
        root = ET.parse(junit).getroot()
        for case in root.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}".split(".")[-1]
            kinds = {child.tag for child in case}
            if "failure" in kinds:
                counts["failed"] += 1
                failed.append(name)
            elif "error" in kinds:
                counts["errors"] += 1
                failed.append(name)
            elif "skipped" in kinds:
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
    except (OSError, ET.ParseError):
        pass
    row = {"device": args.device, **counts, "seconds": wall, "rc": rc, "failures": failed[:20]}
    log = (out / "logs" / "tests.log").read_text(errors="replace")
    collection = re.findall(r"(\d+) errors? during collection", log)
    if collection:
        row["collection_errors"] = int(collection[-1])
    ok = counts["passed"] > 0 and not failed
    note = "" if ok else (f"{len(failed)} failed" if failed else tail(out / "logs" / "tests.log", 3))
    return (0 if ok else (rc or 1)), wall, [row], note


def orchestrate(args) -> int:
    t_start = time.perf_counter()
    if args.device.startswith("cuda"):
        fail_fast(args.device)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    out = Path(args.out or f"gpu-check-{stamp}").resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "rows").mkdir(parents=True, exist_ok=True)
    for old in (out / "rows").glob("*.jsonl"):  # a rerun into the same folder starts over
        old.unlink()
    work = Path(tempfile.mkdtemp(prefix="mocohd-gpu-check-"))
    faulthandler.dump_traceback_later(args.budget + 120, exit=True)  # the last resort: never hang
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MOCOHD_HOME"] = str(work / "home")  # never the user's store
    env.pop("MOCOHD_DEBUG", None)
    env["PYTHONUNBUFFERED"] = "1"
    if args.quick and not args.device.startswith("cuda"):
        # the dry run measures nothing: one thread per process keeps it quick on a small, shared machine
        # (OpenMP threads that spin while other processes hold the cores make tiny ops 10x slower)
        env.setdefault("OMP_NUM_THREADS", "1")
    result = {
        "meta": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": now_iso(),
            "device": args.device,
            "quick": args.quick,
            "budget_s": args.budget,
            "out": str(out),
        },
        "setup": {},
        "steps": [],
        "sections": {},
    }
    try:
        result["setup"] = install_wheels(Path(args.wheels).resolve(), work, env)
    except Exception as e:  # noqa: BLE001 - reported in the result
        result["setup"] = {"error": first_line(e)}
    result["setup"]["pythonpath"] = env["PYTHONPATH"]
    write_results(out, result)
    deadline = t_start + args.budget
    only = set(args.only or [])
    for name, t_full, t_quick in STEPS:
        if only and name not in only and name.split("-")[0] not in only:
            continue
        left = deadline - time.perf_counter()
        timeout = min(t_quick if args.quick else t_full, left)
        entry = {"step": name, "timeout_s": round(timeout)}
        if timeout < 15:
            entry.update(status="skipped", note=f"out of time ({left:.0f} s of the budget left)")
            result["steps"].append(entry)
            write_results(out, result)
            continue
        print(f"[gpu_check] {name} (timeout {timeout:.0f} s)", file=sys.stderr, flush=True)
        if name == "tests":
            rc, wall, rows, note = run_tests(args, out, env, timeout)
            for r in rows:
                result["sections"].setdefault("tests", []).append(r)
        else:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--step",
                name,
                "--device",
                args.device,
                "--out",
                str(out),
                "--work",
                str(work),
                "--step-timeout",
                str(timeout),
            ]
            cmd += ["--quick"] if args.quick else []
            rc, wall = run_logged(cmd, out / "logs" / f"{name}.log", timeout, env=env)
            note = "" if rc == 0 else tail(out / "logs" / f"{name}.log", 4)
            for r in read_rows(out / "rows" / f"{name}.jsonl"):
                result["sections"].setdefault(r.pop("section", name), []).append({**r, "step": name})
        status = "ok" if rc == 0 else ("timeout" if rc == 124 else "failed")
        errors = [r for sec in result["sections"].values() for r in sec if r.get("step") == name and r.get("error")]
        if status == "ok" and errors:
            status, note = "partial", f"{len(errors)} rows with errors"
        entry.update(status=status, seconds=wall, rc=rc, note=note)
        result["steps"].append(entry)
        result["meta"]["wall_s"] = time.perf_counter() - t_start
        write_results(out, result)
    result["meta"]["wall_s"] = time.perf_counter() - t_start
    write_results(out, result)
    shutil.rmtree(work, ignore_errors=True)
    faulthandler.cancel_dump_traceback_later()
    print((out / "results.md").read_text(), flush=True)  # also in the log of whoever ran it
    bad = [s["step"] for s in result["steps"] if s["status"] != "ok"]
    print(
        f"[gpu_check] {len(result['steps']) - len(bad)}/{len(result['steps'])} steps ok"
        f"{' (not ok: ' + ', '.join(bad) + ')' if bad else ''}; {result['meta']['wall_s']:.0f} s; "
        f"{out / 'results.md'}",
        file=sys.stderr,
    )
    return 0


def step_eval(ctx: Ctx) -> None:
    """The detectors of `mocohd eval` (random weights of the published sizes; float32, TF32 off as
    eval runs them): clips/s and frames/s, their features against the CPU's on the same weights,
    and a whole fvd16 on the demo (render + embed) against procedural talking heads."""
    import os

    from mocohd_cli import store
    from mocohd_cli.data.procedural import write_dataset
    from mocohd_cli.detectors import I3D, I3DConfig, InceptionConfig, InceptionV3
    from mocohd_cli.formats.canonical import save_model
    from mocohd_cli.metrics.evaluate import embed, evaluate

    torch = ctx.torch
    ev = ctx.size["eval"]

    def randomized(net):
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * ((2.0 / p[0].numel()) ** 0.5 if p.ndim > 1 else 0.05))
        return net.eval().requires_grad_(False)

    i3d_cfg = I3DConfig() if ev["i3d_scale"] == 1 else I3DConfig.scaled(ev["i3d_scale"])
    nets = {
        "i3d": randomized(I3D(i3d_cfg)),
        "inception": randomized(InceptionV3(InceptionConfig(size=ev["inception_size"]))),
    }
    g = torch.Generator().manual_seed(1)
    for kind, batches in (("i3d", ev["i3d_batches"]), ("inception", ev["inception_batches"])):
        cpu_net = nets[kind]
        net = randomized(type(cpu_net)(cpu_net.config if hasattr(cpu_net, "config") else None)).to(ctx.device)
        frames = 16 if kind == "i3d" else 1
        gflop = counted_gflop(
            torch,
            lambda net=net, kind=kind, frames=frames: (
                net(torch.zeros(1, 3, frames, 224, 224, device=ctx.device))
                if kind == "i3d"
                else net(torch.zeros(1, 3, 299, 299, device=ctx.device))
            ),
        )
        for batch in batches:
            with ctx.record("eval", what=kind, batch=batch, unit="clips" if kind == "i3d" else "frames") as row:
                clips = torch.randint(0, 256, (batch, frames, 64, 64, 3), generator=g, dtype=torch.uint8)
                base = ctx.reset_memory()
                sec, out = ctx.time_fn(partial(embed, net, clips))
                row.update(items_per_s=batch / sec, gflop_per_item=gflop, **ctx.memory(base))
                if gflop:
                    row["tflops"] = gflop * batch / sec / 1000
                if batch == batches[0]:
                    ref = embed(cpu_net, clips[:2])
                    row["max_rel_diff_vs_cpu"] = float((out[:2] - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
    with ctx.record("eval", what="fvd16 on the demo", batch=8, unit="videos") as row:
        home = ctx.work / "eval-home"
        os.environ["MOCOHD_HOME"] = str(home)
        store.kind_dir("i3d", create=True)
        save_model(
            store.store_path("i3d", "i3d"), nets["i3d"].state_dict(), kind="i3d", family="i3d", config=i3d_cfg.to_dict()
        )
        data = write_dataset(ctx.work / "eval-heads", videos=ev["fvd_videos"], frames=20, size=64, seed=0)
        t0 = time.perf_counter()
        r = evaluate(
            ["fvd16"], data, motion="demo", image="demo", videos=ev["fvd_videos"], device=str(ctx.device), batch=8
        )[0]
        again = evaluate(
            ["fvd16"], data, motion="demo", image="demo", videos=ev["fvd_videos"], device=str(ctx.device), batch=8
        )[0]
        row.update(
            items_per_s=2 * r.real / max(r.seconds["total"], 1e-9),
            seconds=time.perf_counter() - t0,
            first_s=r.seconds["total"],
            cached_s=again.seconds["total"],
            real=r.real,
            fake=r.fake,
            same_value_again=again.value == r.value,
            real_cached_again=again.real_cached,
        )


STEP_FUNCS = {
    "machine": step_machine,
    "peak": step_peak,
    "stylegan2-lo": lambda ctx: step_stylegan2(ctx, "lo"),
    "stylegan2-hi": lambda ctx: step_stylegan2(ctx, "hi"),
    "biggan": step_biggan,
    "train-cross": lambda ctx: step_train(ctx, "cross"),
    "train-in": lambda ctx: step_train(ctx, "in"),
    "render": step_render,
    "torchrun": step_torchrun,
    "levers": step_levers,
    "compile": step_compile,
    "eval": step_eval,
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: the CPU dry run")
    ap.add_argument("--out", help="output folder (default gpu-check-YYYYMMDD-HHMM/)")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check (default 480)")
    ap.add_argument("--wheels", default=str(ROOT / ".gpu-wheels"), help="folder of wheels to install when missing")
    ap.add_argument("--only", nargs="+", help="run only these steps (e.g. stylegan2 train render)")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--step-timeout", type=float, default=600.0, help=argparse.SUPPRESS)
    ap.add_argument("--nccl-probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.nccl_probe:
        nccl_probe(args)
        return 0
    if args.step:
        # a hang prints every thread's stack into the step's log and ends the process, before the
        # orchestrator's kill
        faulthandler.enable()
        if args.step_timeout > 10:
            faulthandler.dump_traceback_later(args.step_timeout - 4, exit=True)
        sys.path.insert(0, str(ROOT))
        ctx = Ctx(args)
        STEP_FUNCS[args.step](ctx)
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
