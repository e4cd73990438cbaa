"""The ``mocohd`` command line (``entry``: the app and ``main``), one module per group of
commands, the options they share (``options``), the consoles (``console``) and the progress
display (``progress``)."""

from .entry import app, main

__all__ = ["app", "main"]
