"""`mocohd invert`: the latent of a photo (``invert.invert_and_store``), with its progress, the
faces it aligned and what it found."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TimeElapsedColumn, TimeRemainingColumn

from ..classes import describe_class
from ..faces import Face, largest
from ..invert import StoredLatent, invert_and_store
from ..stopping import interrupt_for
from .console import out, print_notes, say
from .options import Deterministic, Device, Force, Image, Name, Seed
from .progress import Counter

Photos = Annotated[
    list[Path], typer.Argument(metavar="PHOTO...", help="Photos (any format Pillow reads), one latent each.")
]
Steps = Annotated[
    int | None,
    typer.Option(
        "--steps",
        help="Optimisation steps (default: 1000, NVIDIA's projector; with --encoder 100, and 0 keeps the encoder's "
        "answer).",
    ),
]
Encoder = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        help="Start from this image encoder's answer (mocohd train-encoder), every photo in one pass, then refine.",
    ),
]
STEPS, ENCODER_STEPS = 1000, 100
Space = Annotated[
    str,
    typer.Option(
        "--space", help="w (one w for every layer, as the projector) or w+ (one per layer: closer, less editable)."
    ),
]
Loss = Annotated[
    str,
    typer.Option(
        "--loss",
        help="perceptual (VGG16 features; `mocohd fetch vgg16`) or pixel (MSE + multi-scale SSIM, no weights).",
    ),
]
Crop = Annotated[
    str,
    typer.Option("--crop", help="center (the centred square) or none (the whole photo, squeezed to a square)."),
]
Classes = Annotated[
    list[str] | None,
    typer.Option(
        "--class",
        help="BigGAN: the class mix starts on these classes "
        "(numbers or ImageNet names, shared equally; default: all 1000 equally).",
    ),
]
Truncation = Annotated[
    float,
    typer.Option(
        "--truncation", help="BigGAN: the truncation psi the photo is matched at (render with the same --truncation)."
    ),
]
Align = Annotated[
    bool | None,
    typer.Option(
        "--align/--no-align",
        help="Align each photo's face as FFHQ's images are (dlib's landmarks: needs mocohd-cli's faces extra). "
        "Default: on for generators that depict faces (ffhq, metfaces), else off.",
    ),
]
FaceIndex = Annotated[
    int | None,
    typer.Option(
        "--face",
        help="Which face to align when a photo has several: 0-based, left to right as listed (default: the "
        "largest). Implies --align.",
    ),
]
STOPPING = "stopping after this step (the best latent so far is kept; Ctrl-C again to quit without it)"


def invert_(
    photos: Photos,
    image: Image("Image generator (StyleGAN2, StyleGAN3 or BigGAN): name or path.", required=True),
    name: Name("Store name of the latent (default: the first photo's name).") = None,
    steps: Steps = None,
    space: Space = "w",
    loss: Loss = "perceptual",
    crop: Crop = "center",
    seed: Seed("Seed of the noise maps' start and of the w noise.") = 0,
    device: Device = "auto",
    deterministic: Deterministic = False,
    force: Force("Replace a stored latent of the same name.") = False,
    classes: Classes = None,
    truncation: Truncation = 1.0,
    encoder: Encoder = None,
    align: Align = None,
    face: FaceIndex = None,
):
    """Find the latent that makes an image generator reproduce a photo, and store it (kind latent).

    NVIDIA's projector recipe: Adam over w and the noise maps from the average w, for --steps steps
    (StyleGAN3: no noise maps; BigGAN: over z and a soft mix of the classes, space w only).
    Several photos are inverted together, each on its own. A face is first aligned as FFHQ's
    (--align; the default for generators that depict faces), and the faces found are listed.
    Ctrl-C stops early and keeps the best latent so far; then `mocohd render --start NAME`
    animates it."""
    if steps is None:
        steps = ENCODER_STEPS if encoder else STEPS
    options = {k: v for k, v in locals().items() if k != "photos"}  # invert_and_store's, by name
    columns = ("{task.fields[dist]}", TimeElapsedColumn(), TimeRemainingColumn())
    counter = Counter("inverting", "steps", *columns, total=steps, fields=("dist",))

    def started(line):  # the models are loaded: the search begins
        counter.start()
        say(line)

    def advanced(done, total, dist):
        text = f"distance {dist.mean():.4f}" if len(dist) == 1 else f"mean distance {dist.mean():.4f}"
        counter.update(done, text, dist=text)

    try:
        found = invert_and_store(
            photos,
            **options,
            on_start=started,
            progress=advanced,
            on_stop_request=partial(say, STOPPING),
            on_note=lambda line: print_notes([line]),
            on_faces=_list_faces,
        )
    finally:
        counter.stop()
    _report(found, photos, image, truncation)


def _list_faces(photo: Path, faces: list[Face], chosen: int) -> None:
    """The faces found in ``photo``, numbered as --face takes them, and the one aligned."""
    print_line = partial(out.print, soft_wrap=True, markup=False, highlight=False)
    print_line(f"{photo}: {len(faces)} face(s) found; box: left, top, right, bottom in pixels")
    for i, f in enumerate(faces):
        mark = ""
        if i == chosen:
            mark = "  <- aligned" + (" (the largest; --face N picks another)" if i == largest(faces) else "")
        print_line(f"  face {i}: box ({', '.join(str(v) for v in f.box)}), score {f.score:.2f}{mark}")


def _report(found: StoredLatent, photos: list[Path], image: str, truncation: float) -> None:
    """What the search found, photo by photo, and where it is stored; a search stopped early by a
    signal ends in that signal's exit (main prints the outcome)."""
    latent, name = found.latent, found.name
    if name != found.requested:
        print_notes(
            [
                f"a latent named '{found.requested}' was stored while this one was found (another invert?); this one "
                f"is stored as '{name}'"
            ]
        )
    print_line = partial(out.print, soft_wrap=True, markup=False, highlight=False)
    loss, steps = latent.info["loss"], latent.info["steps"]
    for p, d, k in zip(photos, latent.distance, latent.info["best_step"], strict=True):
        print_line(f"{p}: distance {d:.4f} ({loss}, best after {k} of {steps} steps)")
    if latent.classes is not None:  # BigGAN: its class mix
        c_dim = latent.classes.shape[1]
        for p, mix in zip(photos, latent.classes, strict=True):
            share, k = mix.topk(3)
            print_line(
                f"{p}: classes "
                + ", ".join(f"{describe_class(int(c), c_dim)} {v:.0%}" for v, c in zip(share, k, strict=True))
            )
    done = f"latent {name} ({len(photos)} photo(s), space {latent.space}) -> {found.path}"
    if found.stopped_by is not None:
        raise interrupt_for(
            found.stopped_by, f"stopped at step {steps}/{latent.info['steps_planned']}; stored the best {done}"
        )
    print_line(f"stored {done}")
    psi = f" --truncation {truncation:g}" if latent.classes is not None and truncation != 1 else ""
    print_line(f"next: mocohd render {name}.mp4 --image {image} --start {name}{psi}")
