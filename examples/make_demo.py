"""Make the demo models end to end with mocohd's own tools, reproducibly from a seed:

  1. a procedural talking-head dataset (mocohd_cli.data.procedural),
  2. a StyleGAN2 generator trained on its frames (train-image),
  3. the generator's PCA basis,
  4. a motion generator trained in-domain on the videos (train),
  5. a preview strip of rendered frames, and timings.json with each stage's time.

    python examples/make_demo.py ./demo-build                   # the full recipe (hours on a CPU)
    python examples/make_demo.py ./demo-build --install         # ... and copy the models into weights/
    python examples/make_demo.py /tmp/d --scale tiny            # seconds: checks the pipeline

Everything is written under the output folder (its own MOCOHD_HOME), so the
user's store is untouched; a second run resumes finished stages from there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCALES = {
    # videos, frames, size; image generator; motion
    "full": dict(
        videos=400,
        frames=64,
        size=64,
        image_steps=20000,
        image_batch=32,
        channel_base=4096,
        channel_max=256,
        mapping_layers=4,
        w_dim=256,
        motion_steps=3000,
        motion_batch=16,
        clip_frames=16,
        time_step=2,
        n_pca=64,
        h_dim=256,
        dv_channels=32,
        pca_samples=200_000,
    ),
    # about 1.5 hours on 2 CPU cores: the models shipped in weights/
    "cpu": dict(
        videos=160,
        frames=48,
        size=64,
        image_steps=12000,
        image_batch=16,
        channel_base=1024,
        channel_max=128,
        mapping_layers=4,
        w_dim=128,
        motion_steps=200,
        motion_batch=8,
        clip_frames=16,
        time_step=2,
        n_pca=64,
        h_dim=128,
        dv_channels=32,
        pca_samples=100_000,
        motion_lr=1e-3,
    ),
    "tiny": dict(
        videos=3,
        frames=34,
        size=16,
        image_steps=2,
        image_batch=4,
        channel_base=256,
        channel_max=16,
        mapping_layers=2,
        w_dim=16,
        motion_steps=2,
        motion_batch=2,
        clip_frames=4,
        time_step=2,
        n_pca=8,
        h_dim=8,
        dv_channels=4,
        pca_samples=1000,
    ),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--install", action="store_true", help="copy the image and motion models into weights/ as the demo")
    args = ap.parse_args()
    s = SCALES[args.scale]
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["MOCOHD_HOME"] = str(args.out / "home")
    sys.path.insert(0, str(ROOT))

    from mocohd_cli.data.procedural import write_dataset
    from mocohd_cli.loaders.pca_bases import pca_for
    from mocohd_cli.train import TrainConfig, train
    from mocohd_cli.train.image_trainer import ImageTrainConfig, train_image

    timings: dict[str, float] = {}

    def stage(name, fn):
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        result = fn()
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"   {timings[name]} s", flush=True)
        return result

    def report(kind, info):
        if kind == "step" and (info["step"] % 100 == 0 or info["step"] == info["total"]):
            print(
                f"   step {info['step']}/{info['total']} "
                + " ".join(f"{k}={v:.3f}" for k, v in info["losses"].items()),
                flush=True,
            )

    data = args.out / "heads"
    stage("data", lambda: write_dataset(data, s["videos"], s["frames"], s["size"], args.seed))
    image_cfg = ImageTrainConfig(
        data=str(data),
        name="heads",
        resolution=s["size"],
        steps=s["image_steps"],
        batch=s["image_batch"],
        channel_base=s["channel_base"],
        channel_max=s["channel_max"],
        mapping_layers=s["mapping_layers"],
        w_dim=s["w_dim"],
        seed=args.seed,
        device=args.device,
        save_every=1000,
        sample_every=1000,
    )
    run = args.out / "home" / "runs" / "heads-image" / "checkpoint.pt"
    stage("train-image", lambda: train_image(image_cfg, resume=run.exists(), on_event=report))
    stage("pca", lambda: pca_for("heads", samples=s["pca_samples"]))
    motion_cfg = TrainConfig(
        data=str(data),
        image="heads",
        name="heads",
        domain="in",
        steps=s["motion_steps"],
        batch=s["motion_batch"],
        frames=s["clip_frames"],
        time_step=s["time_step"],
        n_pca=s["n_pca"],
        h_dim=s["h_dim"],
        dv_channels=s["dv_channels"],
        seed=args.seed,
        device=args.device,
        pca_samples=s["pca_samples"],
        save_every=100,
        sample_every=100,
        lr=s.get("motion_lr", 1e-4),
    )
    mrun = args.out / "home" / "runs" / "heads" / "checkpoint.pt"
    stage("train", lambda: train(motion_cfg, resume=mrun.exists(), on_event=report))

    def preview():
        import imageio.v3 as iio
        import numpy as np

        from mocohd_cli import load_image_generator, load_motion, render_frames

        G, M = load_image_generator("heads"), load_motion("heads")
        frames = [f.numpy() for f in render_frames(M, G, frames=24, videos=4, seed=args.seed)]
        rows = [np.concatenate([frames[t][v] for t in range(0, 24, 3)], axis=1) for v in range(4)]
        iio.imwrite(args.out / "demo_frames.png", np.concatenate(rows, axis=0))

    stage("preview", preview)
    if args.install:
        from mocohd_cli.formats.canonical import atomic_write_bytes

        home = args.out / "home"  # written under a temporary name and renamed: weights/ is never half-written
        atomic_write_bytes(
            ROOT / "weights" / "stylegan2-demo.safetensors", (home / "image" / "heads.safetensors").read_bytes()
        )
        atomic_write_bytes(
            ROOT / "weights" / "motion-demo.safetensors", (home / "motion" / "heads.safetensors").read_bytes()
        )
        print("installed the demo models into weights/")
        stage("strip", lambda: readme_strip(ROOT / "examples"))
    (args.out / "timings.json").write_text(
        json.dumps({"scale": args.scale, "seed": args.seed, "seconds": timings}, indent=1)
    )
    print(f"done: {args.out / 'demo_frames.png'}, {args.out / 'timings.json'}")


def readme_strip(folder: Path) -> None:
    """The pictures in the README: the frames of `mocohd render demo.mp4 -n 48 --videos 4 --grid`
    (the shipped models, seed 0; taken before video encoding) every 6th step side by side
    (demo_strip.png), and 4 videos x 8 steps at 64 px (demo_frames.png)."""
    import imageio.v3 as iio
    import numpy as np

    from mocohd_cli import load_image_generator, load_motion, render_frames
    from mocohd_cli.formats.canonical import atomic_write_bytes
    from mocohd_cli.render import tile

    G, M = (
        load_image_generator(ROOT / "weights" / "stylegan2-demo.safetensors"),
        load_motion(ROOT / "weights" / "motion-demo.safetensors"),
    )
    frames = [f.numpy() for f in render_frames(M, G, frames=48, videos=4, seed=0)]
    strip = np.concatenate([tile(frames[t]) for t in range(0, 48, 6)], axis=1)
    atomic_write_bytes(folder / "demo_strip.png", iio.imwrite("<bytes>", strip, extension=".png"))
    rows = [np.concatenate([frames[t][v] for t in range(0, 48, 6)], axis=1) for v in range(4)]
    atomic_write_bytes(
        folder / "demo_frames.png", iio.imwrite("<bytes>", np.concatenate(rows, axis=0), extension=".png")
    )


if __name__ == "__main__":
    main()
