"""Training runs as the studio shows them, read-only: the runs of the store, the series of a
run's ``metrics.jsonl`` (``train.run`` writes it) and its sample files.

    for name in list_runs():
        series = read_metrics(name)      # {"loss_g": [(step, value), ...], "monitor distance": [...], "fvd16": [...]}
        files = run_samples(name)        # samples/step_N.png or .mp4, oldest first

A run that is training appends to its metrics as it goes: reading again shows the new lines (a
line being written, cut short, is skipped until it is whole).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .. import store
from ..errors import MocohdError
from .jobs import check_store_name

SAMPLE_SUFFIXES = (".png", ".jpg", ".mp4", ".webm", ".gif")
NOT_LOSSES = ("step", "epoch", "it_s")  # the metrics line's other numbers


def runs_folder() -> Path:
    return store.home() / "runs"


def list_runs() -> list[str]:
    """The store's training runs (folders of ``runs/`` with a config or metrics), newest first."""
    folder = runs_folder()
    if not folder.is_dir():
        return []
    runs = [
        p for p in folder.iterdir() if p.is_dir() and ((p / "metrics.jsonl").exists() or (p / "config.json").exists())
    ]
    runs.sort(key=lambda p: _modified(p), reverse=True)
    return [p.name for p in runs]


def _modified(run: Path) -> float:
    times = [f.stat().st_mtime for f in (run / "metrics.jsonl", run / "config.json") if f.exists()]
    return max(times, default=0.0)


def run_folder(name: str) -> Path:
    """The folder of run ``name`` (a name of ``list_runs``, never a path)."""
    path = runs_folder() / check_store_name(name, "the run")
    if not path.is_dir():
        raise MocohdError(f"no training run named {name!r} in {runs_folder()}")
    return path


def read_metrics(name: str) -> dict[str, list[tuple[int, float]]]:
    """The run's series by name: each loss (the mean of its metrics line), 'monitor distance'
    (motion runs with --monitor) and each evaluation metric (fvd16 with --eval-every)."""
    series: dict[str, list[tuple[int, float]]] = {}

    def add(key, step, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            series.setdefault(key, []).append((step, float(value)))

    path = run_folder(name) / "metrics.jsonl"
    if not path.exists():
        return series
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line being written
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            continue
        step = record["step"]
        for key, value in record.items():
            if key == "monitor" and isinstance(value, dict):
                add("monitor distance", step, value.get("distance"))
            elif key == "eval" and isinstance(value, dict):
                for metric, v in value.items():
                    add(metric, step, v)
            elif key not in NOT_LOSSES:
                add(key, step, value)
    return series


def losses(series: dict[str, list[tuple[int, float]]]) -> list[str]:
    """The names of ``series`` that are losses (not the monitor's distance nor an evaluation)."""
    return [k for k in series if k != "monitor distance" and not k.startswith(("fvd", "fid"))]


def run_samples(name: str) -> list[Path]:
    """The run's sample files (``samples/step_N.*``), oldest first."""
    folder = run_folder(name) / "samples"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SAMPLE_SUFFIXES)
