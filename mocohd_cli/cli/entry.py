"""The ``mocohd`` command line: a thin Typer layer over the library.

Every command parses its options, calls one library function and prints the
result. Failures the user can fix raise ``MocohdError`` and become one line on
stderr with exit code 1; ``--debug`` (or ``MOCOHD_DEBUG=1``) shows tracebacks.
This module holds the app, its commands in the order ``--help`` lists them,
and ``main``, which turns errors and signals into one line and an exit code.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import Annotated

import typer
from rich.markup import escape

from .. import __version__, distributed
from ..errors import MocohdError, UsageError
from ..stopping import Terminated
from . import (
    directions_command,
    encoder_commands,
    eval_command,
    invert_command,
    model_commands,
    render_command,
    studio_command,
    train_commands,
)
from .console import err, out
from .options import Debug

app = typer.Typer(
    name="mocohd",
    help="High-resolution video synthesis with pretrained image generators (MoCoGAN-HD).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_debug = os.environ.get("MOCOHD_DEBUG", "") not in ("", "0")


def _version(value: bool):
    if value:
        out.print(f"mocohd {__version__}")
        raise typer.Exit()


Version = Annotated[
    bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
]


@app.callback()
def _main(debug: Debug = False, version: Version = False):
    global _debug
    _debug = _debug or debug


app.command("list")(model_commands.list_models)
app.command()(model_commands.info)
app.command("import")(model_commands.import_)
app.command()(model_commands.fetch)
app.command()(model_commands.push)
app.command()(train_commands.prepare)
app.command()(model_commands.pca)
app.command()(render_command.render)
app.command()(directions_command.directions)
app.command("eval")(eval_command.eval_)
app.command("invert")(invert_command.invert_)
app.command()(train_commands.train)
app.command("train-image")(train_commands.train_image)
app.command("train-encoder")(encoder_commands.train_encoder)
app.command()(studio_command.studio)


def _on_sigterm(signum, frame):
    raise Terminated()


def _interrupt_behind(e: BaseException | None) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt that caused ``e``: typer turns one into a silent SystemExit(130)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning errors into one line + exit 1 (2 for usage
    errors), Ctrl-C into one line + exit 130 and SIGTERM into one line + exit 143. The line says
    what a command kept when it tells (an ``outcome`` on the interrupt).

    A process of a torchrun group leaves by ``os._exit`` once its exit handlers have run: gloo's
    threads, destroyed during the interpreter's own teardown after the group has ended, sometimes
    abort the process ("terminate called without an active exception", exit -6), which would turn
    a finished run into a failed one. Everything it wrote is closed and flushed by then."""
    try:
        _main(argv)
    except SystemExit as e:
        if not distributed.joined():
            raise
        _leave(e.code)
    if distributed.joined():
        _leave(0)


def _leave(code) -> None:
    """Exit now with ``code`` (as ``sys.exit`` reads it), after the exit handlers, skipping teardown."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _main(argv: list[str] | None) -> None:
    global _debug
    argv = list(sys.argv[1:] if argv is None else argv)
    _debug = _debug or "--debug" in argv
    old_term = None  # a SIGTERM ignored by whoever started us stays ignored
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _run(argv)
    except MocohdError as e:
        if _debug:
            raise
        err.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)  # brackets as written: [N, 3], [faces]
        sys.exit(2 if isinstance(e, UsageError) else 1)
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        outcome = getattr(e, "outcome", None)
        err.print(f"{what}: {outcome}" if outcome else what, markup=False, highlight=False, soft_wrap=True)
        sys.exit(143 if isinstance(e, Terminated) else 130)
    except Exception as e:  # a bug or an unanticipated failure: still one line
        if _debug:
            raise
        err.print(
            f"[red]error:[/red] {type(e).__name__}: {escape(str(e))} (run with --debug for the traceback)",
            soft_wrap=True,
        )
        sys.exit(1)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _run(argv: list[str]) -> None:
    """The app on ``argv``, with the Ctrl-C that typer turns into a silent exit 130 raised again."""
    try:
        app(args=argv, prog_name="mocohd", standalone_mode=True)
    except SystemExit as e:
        stopped = _interrupt_behind(e) if e.code == 130 else None
        if stopped is None:
            raise
        raise stopped from None
