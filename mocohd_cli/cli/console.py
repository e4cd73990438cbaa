"""Where the command line prints: results on stdout (``out``); progress, notes and errors on
stderr (``err``), so that a pipe gets the results alone."""

from __future__ import annotations

import warnings
from contextlib import contextmanager

from rich.console import Console

from .. import store

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def say(text: str) -> None:
    """One plain line on stderr, whole however long (a log is read by programs too)."""
    err.print(text, markup=False, highlight=False, soft_wrap=True)


def print_notes(notes) -> None:
    """Each note once, as ``note: ...`` on stderr."""
    for note in dict.fromkeys(n for n in notes if n):
        err.print(f"note: {note}", soft_wrap=True, markup=False, highlight=False)


@contextmanager
def shadow_notes():
    """Collect the library's ShadowWarnings (a stored name that hides a shipped or
    registry model) into a list, to print as notes rather than as Python warnings."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", store.ShadowWarning)
        try:
            yield notes
        finally:
            others = [w for w in caught if not issubclass(w.category, store.ShadowWarning)]
            notes += [str(w.message) for w in caught if issubclass(w.category, store.ShadowWarning)]
    for w in others:  # anything else is shown as it would have been
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
