"""The options several commands share, as ``typing.Annotated`` aliases: each flag and its help
are written once. Where the help says what the option does for one command (``--seed``,
``--force``, ...), the alias is a function of that help."""

from __future__ import annotations

from typing import Annotated

import typer

DEVICES = "auto, cpu, cuda, cuda:N or mps"

Device = Annotated[str, typer.Option("--device", help=f"{DEVICES}.")]
Deterministic = Annotated[
    bool,
    typer.Option(
        "--deterministic",
        help="Deterministic kernels only: bitwise the same output on CUDA too, somewhat slower there "
        "(an op without one stops with its name).",
    ),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors (or set MOCOHD_DEBUG=1).")]
# training: both trainers
Workers = Annotated[int, typer.Option("--workers", help="Data loader processes per rank.")]
LogEvery = Annotated[
    int, typer.Option("--log-every", help="Steps between metric lines (and progress lines when not on a terminal).")
]
TrainSeed = Annotated[int, typer.Option("--seed", help="Seed of every random stream.")]
StartOver = Annotated[bool, typer.Option("--force", help="Start the run over if it exists.")]


def option(kind, *flags: str, help: str):
    """``Annotated[kind, typer.Option(*flags, help=help)]``: a command's own options, one a line."""
    return Annotated[kind, typer.Option(*flags, help=help)]


# Spelled as the types they return.
def Seed(help: str):
    return Annotated[int, typer.Option("--seed", help=help)]


def Force(help: str):
    return Annotated[bool, typer.Option("--force", help=help)]


def Name(help: str, required: bool = False):
    return Annotated[str if required else str | None, typer.Option("--name", help=help)]


def Image(help: str, short: bool = True, required: bool = False):
    """``--image`` (and ``-i`` where ``short``): an image generator, by name or path."""
    flags = ("--image", "-i") if short else ("--image",)
    return Annotated[str if required else str | None, typer.Option(*flags, help=help)]


def Motion(help: str):
    return Annotated[str | None, typer.Option("--motion", "-m", help=help)]


def given(ctx: typer.Context, values: dict) -> dict:
    """The options of ``values`` (a command's parameters) that the command line gave: the library
    takes the others from its config's defaults (a new run) or from the run's stored settings (a resume)."""
    sources = {k: ctx.get_parameter_source(k) for k in values}  # typer's own copy of click: compare by name
    return {k: v for k, v in values.items() if sources[k] is not None and sources[k].name != "DEFAULT"}
