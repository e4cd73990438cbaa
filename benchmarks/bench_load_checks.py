"""What the load-time checks of a model file cost (the recorded weights hash, the NaN/inf scan).

    python benchmarks/bench_load_checks.py                 # the shipped demo and a 1024 px config-f StyleGAN2
    python benchmarks/bench_load_checks.py --resolution 256

Every canonical file is checked when it is loaded: the weights sha256 is
recomputed from the tensors and compared with the recorded one, and every
tensor is scanned for NaN/inf. This measures, on the same files in one run:
reading the tensors alone, the check alone (hash + scan), and the whole
``load_image_generator``; and, as the machine's peak for the hash, plain
``hashlib.sha256`` over one buffer of the same size. Reported as times,
MiB/s, the check's share of the whole load and its fraction of the hash peak.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mocohd_cli import load_image_generator
from mocohd_cli.formats import canonical
from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator
from mocohd_cli.store import weights_dir


def best_of(fn, repeats: int) -> float:
    """The median of ``repeats`` timings of ``fn()`` after one warm-up, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(path: Path, repeats: int) -> dict:
    size = path.stat().st_size
    header = canonical.read_header(path)
    tensors = canonical.load_tensors(path)
    read = best_of(lambda: canonical.load_tensors(path), repeats)
    check = best_of(lambda: canonical.verify_tensors(tensors, header.weights_sha256, path), repeats)
    load = best_of(lambda: load_image_generator(str(path), device="cpu"), repeats)
    buffer = b"\0" * size
    peak = best_of(lambda: hashlib.sha256(buffer).digest(), repeats)
    mib = size / 2**20
    return {
        "file": path.name,
        "MiB": mib,
        "read_ms": read * 1e3,
        "check_ms": check * 1e3,
        "load_ms": load * 1e3,
        "check_MiB_s": mib / check,
        "share_of_load": check / load,
        "of_hash_peak": peak / check,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=1024, help="config-f StyleGAN2 to build (random weights)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    rows = [measure(weights_dir() / "stylegan2-demo.safetensors", args.repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        G = StyleGAN2Generator(StyleGAN2Config.preset("f", args.resolution))
        path = Path(tmp) / f"stylegan2-f-{args.resolution}.safetensors"
        canonical.save_model(path, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
        del G
        rows.append(measure(path, args.repeats))
    print(
        "| file | MiB | read tensors ms | check ms | whole load ms | check MiB/s | check / load | hash peak / check |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['file']} | {r['MiB']:.1f} | {r['read_ms']:.1f} | {r['check_ms']:.1f} | {r['load_ms']:.1f} | "
            f"{r['check_MiB_s']:.0f} | {r['share_of_load']:.0%} | {r['of_hash_peak']:.0%} |"
        )


if __name__ == "__main__":
    main()
