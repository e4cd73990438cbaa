"""Progress on stderr: a live rich bar on a terminal; on anything else (a pipe, a log file, CI),
where a live bar shows nothing until the end, plain lines now and then (``plain_progress``)."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..train.monitor import summary as monitor_summary
from .console import err


def plain_progress(label: str, unit: str, total: int | None, first: int = 0, every_s: float = 10.0):
    """Progress for a stderr that is not a terminal. Returns ``report(done, extra="")``, which
    prints one plain line such as ``rendering: 120/480 frames, 35.2 frames/s`` (``extra`` appended
    after a comma) when ``done`` reaches another tenth of ``total``, or ``every_s`` seconds after
    the last line; rates count from the call to ``plain_progress`` and from ``first`` (a resumed
    run's first step)."""
    t0 = time.perf_counter()
    state = {"tenth": (first * 10 // total) if total else 0, "said": t0}

    def report(done: int, extra: str = "") -> None:
        now = time.perf_counter()
        tenth = (done * 10 // total) if total else 0
        if tenth <= state["tenth"] and now - state["said"] < every_s:
            return
        state.update(tenth=tenth, said=now)
        rate = (done - first) / max(now - t0, 1e-9)
        line = f"{label}: {done}/{total} {unit}" if total else f"{label}: {done} {unit}"
        line += f", {rate:.1f} {unit}/s" + (f", {extra}" if extra else "")
        err.print(line, markup=False, highlight=False, soft_wrap=True)

    return report


def bar(*columns, disable: bool = False) -> Progress:
    """A transient bar on stderr of ``columns`` (rich columns; text columns as strings)."""
    columns = [TextColumn(c) if isinstance(c, str) else c for c in columns]
    return Progress(*columns, console=err, transient=True, disable=disable)


class Counter:
    """A bar of one count (``label``, done/total, ``extra`` columns) or, off a terminal, plain
    lines (``plain_progress``, from when ``total`` is known). ``start()`` shows the bar: the work
    begins (models are loaded); ``start(total)`` also sets its total, and rates count from there."""

    def __init__(self, label: str, unit: str, *extra, total: int | None = None, fields: tuple[str, ...] = ()):
        self.label, self.unit = label, unit
        self.live = err.is_terminal
        self.plain = None if self.live or total is None else plain_progress(label, unit, total)
        self.bar = bar(label, BarColumn(), MofNCompleteColumn(), *extra, disable=not self.live)
        self.task = self.bar.add_task(label, total=total, **dict.fromkeys(fields, ""))
        self.t0 = time.perf_counter()

    def start(self, total: int | None = None) -> None:
        if total is not None:
            self.bar.update(self.task, total=total)
            self.t0 = time.perf_counter()
            self.plain = None if self.live else plain_progress(self.label, self.unit, total)
        self.bar.start()

    def update(self, done: int, extra: str = "", **fields) -> None:
        """``done`` of the total; ``extra`` ends the plain line; ``fields`` fill the bar's columns."""
        self.bar.update(self.task, completed=done, **fields)
        if self.plain:
            self.plain(done, extra)

    @property
    def elapsed(self) -> float:
        """Seconds since the bar was made, or since ``start(total)``."""
        return time.perf_counter() - self.t0

    def stop(self) -> None:
        self.bar.stop()


class Stages:
    """`mocohd eval`'s progress: ``(stage, done, total)`` calls, a new bar (and plain-line counter)
    for each stage; FID counts frames, the others clips."""

    def __init__(self):
        self.live = err.is_terminal
        columns = ["{task.fields[stage]}", BarColumn(), MofNCompleteColumn(), "{task.fields[rate]}"]
        self.bar = bar(*columns, TimeRemainingColumn(), disable=not self.live)
        self.stage, self.t0, self.plain, self.task = None, 0.0, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        unit = "frames" if stage.endswith("fid") else "clips"
        if stage != self.stage:
            self.stage, self.t0 = stage, now
            self.plain = None if self.live else plain_progress(stage, unit, total)
            self.task = self.bar.add_task(stage, total=total, stage=stage, rate="")
            self.bar.start()
        self.bar.update(self.task, completed=done, rate=f"{done / max(now - self.t0, 1e-9):.1f} {unit}/s")
        if self.plain:
            self.plain(done)

    def stop(self) -> None:
        self.bar.stop()


class Training:
    """A trainer's events as a progress bar (steps, it/s, the ``shown`` losses); ``describe(info)``
    is the first line of the 'start' event. When stderr is not a terminal (a pipe, a log file),
    plain lines instead: a logged step at most every 10 s, the last step and each checkpoint (and
    the monitor's inversion: a line every tenth of it or 10 s)."""

    def __init__(self, describe, shown: tuple[str, ...]):
        self.describe, self.shown = describe, shown
        self.plain = not err.is_terminal
        columns = ["training", BarColumn(), MofNCompleteColumn(), "{task.fields[rate]}", "{task.fields[losses]}"]
        self.bar = bar(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=self.plain)
        self.task = self.bar.add_task("train", total=None, rate="", losses="")
        self.t0, self.first, self.said = 0.0, 0, -1e9
        self.inverting = None  # plain lines of the monitor's inversion
        self.eval = self.monitor = ""  # the latest evaluation and monitor distance, on the progress line

    def say(self, text: str) -> None:  # plain: one line each, however long (a log is read by programs too)
        err.print(text, soft_wrap=self.plain)

    def on_event(self, kind: str, info: dict) -> None:
        handler = getattr(self, f"_{kind}", None)
        if handler is not None:
            handler(info)

    def _prepare(self, info) -> None:
        self.bar.update(self.task, completed=info["done"], total=info["total"], losses="decoding")
        self.bar.start()

    def _invert(self, info) -> None:  # the monitor's real clips, before training
        if self.plain:
            if self.inverting is None:
                self.inverting = plain_progress("monitor: inverting", "steps", info["total"])
            self.inverting(info["done"])
        else:
            self.bar.update(
                self.task, completed=info["done"], total=info["total"], losses="monitor: inverting real clips"
            )
            self.bar.start()

    def _note(self, info) -> None:
        self.say(info["text"])

    def _start(self, info) -> None:
        self.t0, self.first = time.perf_counter(), info["step"]
        where = f"{info['device']}" + (f" x {info['world']} processes" if info["world"] > 1 else "")
        resuming = f"; resuming at step {info['step']}" if info["step"] else ""
        self.say(f"{self.describe(info)}, {where}, {info['precision']}{resuming}")
        # the rate and time of training alone
        self.bar.reset(self.task, completed=info["step"], total=info["total"], rate="", losses="")
        self.bar.start()

    def _step(self, info) -> None:
        rate = (info["step"] - self.first) / max(time.perf_counter() - self.t0, 1e-9)
        losses = info.get("mean", info["losses"]) if self.plain else info["losses"]  # plain: the logged means
        text = " ".join(f"{k}={losses[k]:.3f}" for k in self.shown if k in losses)
        text += f"  {self.eval}" if self.eval else ""
        text += f"  {self.monitor}" if self.monitor else ""
        self.bar.update(self.task, completed=info["step"], rate=f"{rate:.2f} it/s", losses=text)
        now = time.perf_counter()
        if self.plain and "mean" in info and (now - self.said >= 10 or info["step"] == info["total"]):
            self.said = now
            self.say(f"step {info['step']}/{info['total']}  {rate:.2f} it/s  {text}")

    def _checkpoint(self, info) -> None:
        if self.plain:
            self.say(f"checkpoint at step {info['step']}")

    def _sample(self, info) -> None:
        self.say(f"sample: {info['path']}")

    def _eval(self, info) -> None:
        self.eval = ", ".join(f"{k} {v:.2f}" for k, v in info["values"].items())
        self.say(f"step {info['step']}: {self.eval}")

    def _monitor(self, info) -> None:
        self.monitor = f"monitor {info['values']['distance']:.3f}"  # the progress line: the distance only
        self.say(f"step {info['step']}: {monitor_summary(info['values'])}")

    def stop(self) -> None:
        self.bar.stop()
