"""Regenerate tests/data/face_reference.npz from NVIDIA's FFHQ alignment script (and, given
the scikit-image photo, tests/data/astronaut.png), for tests/test_faces.py.

    python tests/data/make_face_reference.py --ffhq PATH/ffhq-dataset [--astronaut PATH/astronaut.png]

``--ffhq``: a checkout of NVlabs/ffhq-dataset. Its ``download_ffhq.py`` is imported from there
(it is not part of this repository) and its ``recreate_aligned_images`` cuts the photo once per
case, with the case's 68 landmarks, output size and a transform size of 4x the output (mocohd's
default, as FFHQ's 4096 for 1024). It needs numpy, scipy and Pillow; ``PIL.Image.ANTIALIAS``,
which Pillow 10 renamed ``LANCZOS``, is restored for it, and ``requests``, which it imports but
does not use here, is stubbed when missing.

``--astronaut``: scikit-image's ``skimage/data/astronaut.png`` (NASA's portrait of the astronaut
Eileen Collins, in the public domain); when given, tests/data/astronaut.png is made from it again:
its 256 px square at (96, 0), the head and shoulders, resized to 192 px (Lanczos).

The cases' landmarks: the 68 points dlib finds in the photo (``mocohd_cli.faces``, which needs
the faces extra), and three cases made from them that take the recipe's other branches: a
smaller output (the photo is shrunk first), the face turned by 25 degrees, and the face moved
into the top left corner at 1.5x (the square leaves the photo: reflected, blurred padding).
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from mocohd_cli.faces import detect_landmarks  # noqa: E402 - ROOT first: this checkout's package

PHOTO = ROOT / "tests" / "data" / "astronaut.png"
OUT = ROOT / "tests" / "data" / "face_reference.npz"
CUT, SIZE = (96, 0, 352, 256), 192


def make_photo(astronaut: Path) -> None:
    im = Image.open(astronaut).convert("RGB").crop(CUT).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    im.save(PHOTO, optimize=True)
    print(f"wrote {PHOTO} ({PHOTO.stat().st_size} bytes)")


def cases(landmarks: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
    """name -> (68 landmarks, output size)."""
    centre = landmarks[36:48].mean(axis=0)
    turn = np.radians(25)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return {
        "detected": (landmarks, 64),
        "shrunk": (landmarks, 16),
        "turned": ((landmarks - centre) @ rotation.T + centre, 48),
        "corner": ((landmarks - centre) * 1.5 + np.array([24.0, 20.0]), 64),
    }


def public_recipe(ffhq: Path):
    """``recreate_aligned_images`` of the checkout at ``ffhq``."""
    if importlib.util.find_spec("requests") is None:
        sys.modules["requests"] = types.ModuleType("requests")  # imported at its top, used only to download
    if not hasattr(Image, "ANTIALIAS"):
        Image.ANTIALIAS = Image.Resampling.LANCZOS  # its name before Pillow 10
    spec = importlib.util.spec_from_file_location("download_ffhq", ffhq / "download_ffhq.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.recreate_aligned_images


def reference(recipe, ffhq: Path, landmarks: np.ndarray, size: int) -> np.ndarray:
    """The public recipe's cut of the photo for ``landmarks``, at ``size`` px: uint8 [size, size, 3]."""
    item = {"in_the_wild": {"face_landmarks": landmarks.tolist(), "file_path": PHOTO.name}}
    with tempfile.TemporaryDirectory() as out:
        here = os.getcwd()
        os.chdir(ffhq)  # it copies its LICENSE.txt from the working folder into the output's
        try:
            recipe({"0": item}, str(PHOTO.parent), dst_dir=out, output_size=size, transform_size=4 * size)
        finally:
            os.chdir(here)
        return np.asarray(Image.open(Path(out) / "00000" / "00000.png").convert("RGB")).copy()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ffhq", type=Path, required=True, help="a checkout of NVlabs/ffhq-dataset")
    p.add_argument("--astronaut", type=Path, help="scikit-image's skimage/data/astronaut.png: remake the photo")
    args = p.parse_args()
    if args.astronaut:
        make_photo(args.astronaut)
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    faces = detect_landmarks(photo)
    assert len(faces) == 1, [f.box for f in faces]
    print(f"detected: box {faces[0].box}, score {faces[0].score:.2f}")
    recipe = public_recipe(args.ffhq)
    arrays = {}
    for name, (landmarks, size) in cases(faces[0].landmarks).items():
        print(f"{name}: {size} px")
        arrays[f"{name}/landmarks"] = landmarks
        arrays[f"{name}/aligned"] = reference(recipe, args.ffhq, landmarks, size)
        print()
    arrays["box"] = np.array(faces[0].box)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {json.dumps(sorted(arrays))}")


if __name__ == "__main__":
    main()
