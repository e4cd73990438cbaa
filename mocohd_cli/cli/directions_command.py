"""`mocohd directions`: an image generator's edit directions (PCA, SeFa) as a table, and with
``--out`` a picture of what each does (``directions.directions``).

    mocohd directions --image ffhq --method sefa --count 6 --out sefa.png
    mocohd directions --image ffhq --layers 4-7 --strengths=-4,-2,0,2,4 --out pca.png
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..directions import STRENGTHS, DirectionsConfig, directions as list_directions
from ..errors import UsageError
from .console import out, say
from .options import Device, Image, Seed, given, option

Method = option(str, "--method", help="pca (GANSpace: principal directions of w) or sefa (SeFa: of the style layers).")
Count = option(int, "--count", help="How many directions to list and show, most significant first.")
Layers = option(
    str | None,
    "--layers",
    help="A-B: the w's the directions move (0-based, inclusive); sefa factorises them. "
    "Default: all (pca), the first four (sefa).",
)
Strengths = option(
    str, "--strengths", help="The picture's columns: comma-separated strengths in stdevs of w, e.g. -3,0,3."
)
Truncation = option(float, "--truncation", help="Truncation psi of the pictured sample (1 = none).")
Cell = option(int | None, "--cell", help="Pixels per picture cell (default: the resolution, at most 128).")
Out = option(Path | None, "--out", help="Write the picture here (.png): a row per direction, a column per strength.")

STRENGTHS_TEXT = ",".join(f"{s:g}" for s in STRENGTHS)


def directions(
    ctx: typer.Context,
    image: Image("Image generator: name or path.") = DirectionsConfig.image,
    method: Method = DirectionsConfig.method,
    count: Count = DirectionsConfig.count,
    layers: Layers = DirectionsConfig.layers,
    strengths: Strengths = STRENGTHS_TEXT,
    seed: Seed("Seed of the pictured sample.") = DirectionsConfig.seed,
    truncation: Truncation = DirectionsConfig.truncation,
    cell: Cell = DirectionsConfig.cell,
    device: Device = DirectionsConfig.device,
    output: Out = None,
):
    """Latent edit directions (for render --edit): PCA or SeFa, with a picture of each."""
    settings = given(ctx, locals())
    settings.pop("output", None)
    if "strengths" in settings:
        settings["strengths"] = _numbers(strengths)
    result = list_directions(output, DirectionsConfig(**settings), on_note=say)
    table = Table(title=f"{result.method} directions, moving w's {result.layers[0]}-{result.layers[1]}")
    table.add_column("direction")
    table.add_column("stdev", justify="right")
    table.add_column("variance" if result.method == "pca" else "eigenvalue", justify="right")
    for row in result.rows:
        value = f"{100 * row.var_ratio:.2f}%" if result.method == "pca" else f"{row.eigenvalue:.4g}"
        table.add_row(f"{result.method}:{row.index}", f"{row.stdev:.4g}", value)
    out.print(table)
    if result.path is not None:
        h, w = result.size
        out.print(
            f"wrote {result.path} ({w}x{h} px: a row per direction, columns at strengths {strengths})", soft_wrap=True
        )


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--strengths must be comma-separated numbers, got {text!r}") from None
