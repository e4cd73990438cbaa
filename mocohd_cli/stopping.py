"""Stopping a long command gracefully: the first Ctrl-C (SIGINT) or SIGTERM asks it to stop
after the step it is in, keeping what it has; a second one stops it at once.

    with GracefulStop(on_request=lambda: print("stopping after this step")) as stop:
        for step in range(steps):
            work(step)
            if stop.requested:
                break
    if stop.requested:
        raise stop.interrupt("stopped at step 12; the best so far is kept")

``interrupt`` gives the exception that the command line turns into one line and its exit code:
``KeyboardInterrupt`` for Ctrl-C (130), ``Terminated`` for SIGTERM (143), with an ``outcome``
attribute saying what was kept. Handlers are installed in the main thread only (elsewhere
Python allows none, and the flag stays down).

A job that a caller, not a signal, stops (``render.render``'s ``should_stop``, the studio's Cancel
button) raises ``Cancelled`` once it has removed what it had begun to write.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


class Cancelled(Exception):
    """A job stopped at its caller's request (a ``should_stop`` callback said so), having removed
    what it had begun to write; not an error (the studio's Cancel button)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, systemd, ``docker stop``), raised in the main thread so that it unwinds
    like Ctrl-C: writers remove their temporaries on the way out, and the command line exits 143."""


def interrupt_for(signum: int | None, outcome: str | None = None) -> KeyboardInterrupt:
    """The exception that stands for ``signum`` (SIGTERM: ``Terminated``; else ``KeyboardInterrupt``)."""
    e = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    if outcome is not None:
        e.outcome = outcome
    return e


class GracefulStop:
    """A context that turns the first SIGINT/SIGTERM into a request (``requested``) and the
    second into an immediate stop (the exception of that signal, raised where the program is)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_request: Callable[[], None] | None = None):
        self.on_request = on_request
        self.count = 0
        self.signum: int | None = None  # the first signal received
        self._old: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.count > 0

    def interrupt(self, outcome: str | None = None) -> KeyboardInterrupt:
        """The exception standing for the signal that asked to stop (Ctrl-C when none did)."""
        return interrupt_for(self.signum, outcome)

    def _handle(self, signum, frame) -> None:
        self.count += 1
        self.signum = self.signum or signum
        if self.count > 1:
            raise interrupt_for(signum)
        if self.on_request is not None:
            self.on_request()

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def ignore_interrupts(_worker_id: int | None = None) -> None:
    """For worker processes (a DataLoader's ``worker_init_fn``): Ctrl-C goes to the whole process
    group, and the main process, not its workers, decides when to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
