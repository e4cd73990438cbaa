"""One process of a 2-process gloo group started by tests/test_distributed.py (not by torchrun: each
process gets its own environment, so a test can give the two 'nodes' different folders).

    python -m tests.support.dist_worker CASE ARG...   # RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set

Prints one JSON line: the rank, what the case returned or the error it raised (its type and
message), and whether the process group is still initialised afterwards.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch.distributed as td

from mocohd_cli import distributed
from mocohd_cli.distributed import Dist
from mocohd_cli.errors import MocohdError
from mocohd_cli.metrics.evaluate import evaluate as evaluate_videos
from mocohd_cli.train import TrainConfig
from mocohd_cli.train.run import open_run as open_training_run


def slow_writer(seconds: str, timeout: str) -> dict:
    """The writer works for ``seconds`` while the group's timeout is ``timeout`` seconds; then a
    collective, to show the group still works."""
    distributed.TIMEOUT = timedelta(seconds=float(timeout))
    dist = Dist.from_env("cpu")
    try:
        got = dist.writer_first(lambda writer: time.sleep(float(seconds)) or "made" if writer else "read")
        return {"got": got, "all": dist.gather_objects(got)}
    finally:
        dist.close()


def failing_writer(kind: str) -> dict:
    """The writer's work raises (a MocohdError or another exception) while the others wait."""
    dist = Dist.from_env("cpu")

    def work(writer: bool):
        if writer:
            time.sleep(0.5)
            raise MocohdError("the data folder is empty") if kind == "mocohd" else ValueError("a bug")
        return "read"

    try:
        return {"got": dist.writer_first(work)}
    finally:
        dist.close()


def shared(folder: str) -> dict:
    """Join with ``folder`` as the shared folder (each process may be given its own)."""
    dist = Dist.from_env("cpu", shared=Path(folder))
    try:
        return {"rank": dist.rank, "left": sorted(p.name for p in Path(folder).iterdir())}
    finally:
        dist.close()


def open_run(data: str, batch: str) -> dict:
    """A motion run opened and closed (``train.run.open_run``) with ``batch`` clips."""
    cfg = TrainConfig(data=data, image="unused", name="dist", batch=int(batch), device="cpu")
    with open_training_run(cfg) as run:
        return {"world": run.dist.world, "in_run": td.is_initialized()}


def evaluate(data: str, fake: str, i3d: str) -> dict:
    """``metrics.evaluate`` of a folder of fakes, joining the processes itself."""
    results = evaluate_videos(["fvd16"], data, fake=fake, videos=4, batch=4, frame_size=16, device="cpu", i3d=i3d)
    return {"fvd16": results[0].value}


CASES = {f.__name__: f for f in (slow_writer, failing_writer, shared, open_run, evaluate)}


def main() -> None:
    case, *args = sys.argv[1:]
    rank = int(os.environ["RANK"])
    try:
        out = {"result": CASES[case](*args)}
    except Exception as e:  # noqa: BLE001 - reported to the test
        out = {"error": type(e).__name__, "message": str(e)}
    print(json.dumps({"rank": rank, **out, "initialized": td.is_initialized()}), flush=True)


if __name__ == "__main__":
    main()
