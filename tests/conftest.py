"""What several test files share: an isolated model store for every test, the
command line run in-process or in a subprocess, and tiny randomly initialised
StyleGAN2 generators with the files they are saved as."""

import json
import os
import subprocess
import sys

import pytest
import torch

from mocohd_cli import cli
from mocohd_cli.cli import entry
from mocohd_cli.formats import canonical, rosinality
from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

# ---------------------------------------------------------------- the suite's workers


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, cut to a container's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cores


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` starts one worker per usable core (pytest-xdist alone would not see a quota)."""
    return usable_cores()


def pytest_configure(config):
    """Under pytest-xdist, each worker takes its share of the cores: two workers with two threads each
    on two cores spin against each other (a test 15x slower). The share goes into OMP_NUM_THREADS
    before the workers start (here, in the process that starts them): OpenMP reads it when a
    process starts and in every thread it makes, where ``torch.set_num_threads`` would not reach."""
    workers = config.getoption("numprocesses", default=None) if config.pluginmanager.hasplugin("xdist") else None
    if workers in ("auto", "logical"):
        workers = usable_cores()
    if isinstance(workers, int) and workers > 1 and not os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // workers))
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# ---------------------------------------------------------------- every test


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """Every test gets its own empty MOCOHD_HOME and no MOCOHD_DEBUG from the environment."""
    home = tmp_path / "mocohd-home"
    monkeypatch.setenv("MOCOHD_HOME", str(home))
    monkeypatch.delenv("MOCOHD_DEBUG", raising=False)
    return home


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    """Every test starts with the CLI's debug mode off: `--debug` in one in-process run
    sets the module-level flag, which would otherwise carry into the next test."""
    monkeypatch.setattr(entry, "_debug", False)


@pytest.fixture
def one_thread():
    """Tiny CPU work on one thread: OpenMP threads spinning on a busy 2-core machine make tiny ops
    10x slower. Files whose every test is tiny make it autouse (``pytestmark`` / a wrapper)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def store_files(home) -> list[str]:
    """The files under a model store, as sorted relative paths ([] if it does not exist)."""
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()) if home.exists() else []


# ---------------------------------------------------------------- the command line


def run(capsys, *args):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = 0
    try:
        cli.main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def mocohd(tmp_path, hub_url, *args, env=None, timeout=60):
    """Run `python -m mocohd_cli ARGS` in a subprocess against the Hub at ``hub_url``
    (tests/hub_server.py's FakeHub); return (exit code, stdout, stderr).

    A subprocess, so that the HF_* variables are set before huggingface_hub is
    imported, as they would be for a user. The store is ``tmp_path / "home"``, the
    Hugging Face cache ``tmp_path / "hf"``, and the registry of shipped models
    ``tmp_path / "registry.json"`` (empty unless the test wrote one)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    e.update(
        MOCOHD_HOME=str(tmp_path / "home"),
        HF_HOME=str(tmp_path / "hf"),
        HF_ENDPOINT=hub_url,
        HF_HUB_DISABLE_TELEMETRY="1",
        MOCOHD_REGISTRY=str(tmp_path / "registry.json"),
        COLUMNS="250",
    )
    e.update(env or {})
    if not (tmp_path / "registry.json").exists():
        (tmp_path / "registry.json").write_text(json.dumps({"models": []}))
    p = subprocess.run(
        [sys.executable, "-m", "mocohd_cli", *args], capture_output=True, text=True, env=e, timeout=timeout
    )
    return p.returncode, p.stdout, p.stderr


# ---------------------------------------------------------------- tiny generators and their files


def tiny_config(resolution=16, **kw) -> StyleGAN2Config:
    """A StyleGAN2 config small enough for CPU tests: z and w 32, 2 mapping layers, at most 32 channels."""
    base = dict(resolution=resolution, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)
    base.update(kw)
    return StyleGAN2Config(**base)


def randomized_generator(cfg: StyleGAN2Config, seed: int = 0) -> StyleGAN2Generator:
    """A generator whose every parameter is non-trivial (noise strengths, biases, w_avg),
    so that a wrong name or a dropped term changes the output."""
    torch.manual_seed(seed)
    G = StyleGAN2Generator(cfg).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.uniform_(0.1, 0.5)
            elif name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.2)
        G.mapping.w_avg.normal_()
    return G


@pytest.fixture
def tiny_generator():
    """A randomized 16 px generator (tiny_config's defaults)."""
    return randomized_generator(tiny_config())


def save_canonical(path, G: StyleGAN2Generator, sd=None, config=None) -> canonical.ModelHeader:
    """Save ``G`` as a canonical image file (``sd`` and ``config`` replace its own); return the header."""
    return canonical.save_model(
        path, sd or G.state_dict(), kind="image", family="stylegan2", config=config or G.cfg.to_dict()
    )


def save_rosinality(G: StyleGAN2Generator, path):
    """Save ``G`` as rosinality's stylegan2-pytorch writes a checkpoint (a .pt with g_ema); return the path."""
    torch.save(rosinality.to_rosinality_state_dict(G.cfg.to_dict(), G.state_dict()), path)
    return path


@pytest.fixture
def rosinality_pt(tmp_path):
    """An 8 px randomized generator saved as a rosinality checkpoint, tmp_path / "g.pt"."""
    return save_rosinality(randomized_generator(tiny_config(8)), tmp_path / "g.pt")


@pytest.fixture
def pair(tmp_path):
    """A tiny image generator (w 16) and a motion model made 'with' it: (generator file, motion file)."""
    from mocohd_cli.loaders.motion_models import save_motion
    from mocohd_cli.motion import MotionConfig, MotionGenerator
    from mocohd_cli.pca import fit_pca

    G = randomized_generator(tiny_config(16, z_dim=16, w_dim=16))
    gpath = tmp_path / "g.safetensors"
    h = save_canonical(gpath, G)
    basis = fit_pca(G, samples=2000, batch=500)
    torch.manual_seed(0)
    M = MotionGenerator(
        MotionConfig(w_dim=16, noise_dim=16, h_dim=8, n_pca=8, w_residual=1.0), basis.components, basis.stdev
    )
    mpath = tmp_path / "m.safetensors"
    save_motion(mpath, M, image={"image_name": "g", "image_sha256": h.weights_sha256})
    return gpath, mpath
