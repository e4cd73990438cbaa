"""Faces aligned as FFHQ's (``mocohd_cli.faces``, ``mocohd invert --align``).

The alignment of given landmarks is compared with what NVIDIA's ffhq-dataset script
(``recreate_aligned_images``) made of the same photo and landmarks (data/face_reference.npz,
by data/make_face_reference.py): four cases that take each of its branches (a plain crop, the
photo shrunk first, a turned face, a square that leaves the photo and is padded). The photo,
data/astronaut.png, is a 192 px cut of scikit-image's ``astronaut`` (NASA's portrait of Eileen
Collins, in the public domain). The landmark detector (dlib, the faces extra) is tested on it
where the extra is installed, and skipped with the reason elsewhere; the command's refusals
that need no detector run everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mocohd_cli import faces
from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.formats import canonical
from mocohd_cli.hub import parse_target
from mocohd_cli.loaders.image_generators import depicts
from mocohd_cli.loaders.latents import load_latent
from mocohd_cli.photos import read_frame

from .conftest import randomized_generator, run, save_canonical, tiny_config

DATA = Path(__file__).parent / "data"
PHOTO = DATA / "astronaut.png"
REFERENCE = DATA / "face_reference.npz"
CASES = ("detected", "shrunk", "turned", "corner")

needs_extra = pytest.mark.skipif(
    not faces.available(),
    reason=f"the faces extra (dlib and its 68-point model) is not installed: {faces.EXTRA}",
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny generator forwards (tests/conftest.py)


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as f:
        return dict(f)


# ---------------------------------------------------------------- the recipe


@pytest.mark.parametrize("case", CASES)
def test_alignment_of_given_landmarks_is_the_public_recipes(case, reference):
    photo = read_frame(PHOTO)
    want = reference[f"{case}/aligned"]
    quad = faces.ffhq_quad(*faces.eyes_and_mouth(reference[f"{case}/landmarks"]))
    got = faces.align(photo, quad, want.shape[0])
    assert got.dtype == np.uint8 and got.shape == want.shape
    diff = np.abs(got.astype(np.int16) - want)
    assert diff.max() <= 1, (case, int(diff.max()), int((diff > 0).sum()))


def test_the_square_by_hand():
    """Level eyes 20 px apart, the mouth 20 px below: x = d - perp(m) = (40, 0), already of the
    length max(2 * 20, 1.8 * 20); y = (0, 40); the centre 2 px below the eyes' midpoint."""
    eyes = [(40.0, 50.0), (60.0, 50.0)]
    mouth = [(42.0, 70.0), (58.0, 70.0)]
    quad = faces.ffhq_quad(eyes, mouth)
    np.testing.assert_allclose(quad, [(10, 12), (10, 92), (90, 92), (90, 12)])
    # turned with the face, and larger by 1.8 |eye to mouth| when that is the longer
    turn = np.radians(30)
    r = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    np.testing.assert_allclose(faces.ffhq_quad(np.array(eyes) @ r.T, np.array(mouth) @ r.T), quad @ r.T, atol=1e-9)
    long = faces.ffhq_quad([(45.0, 50.0), (55.0, 50.0)], [(48.0, 80.0), (52.0, 80.0)])  # |d| 10, |m| 30
    assert np.hypot(*(long[3] - long[0])) == pytest.approx(2 * 1.8 * 30)


def test_eyes_and_mouth_read_the_68_point_scheme():
    lm = np.zeros((68, 2))
    lm[36:42] = (10, 20)
    lm[36] = (4, 20)  # the mean of the six: (9, 20)
    lm[42:48] = (30, 21)
    lm[48], lm[54] = (12, 40), (28, 41)
    eyes, mouth = faces.eyes_and_mouth(lm)
    np.testing.assert_allclose(eyes, [(9, 20), (30, 21)])
    np.testing.assert_allclose(mouth, [(12, 40), (28, 41)])


def test_bad_arguments_are_one_line_usage_errors():
    photo = np.zeros((32, 32, 3), np.uint8)
    square = faces.ffhq_quad([(10.0, 10.0), (20.0, 10.0)], [(11.0, 20.0), (19.0, 20.0)])
    for call in (
        lambda: faces.eyes_and_mouth(np.zeros((5, 2))),
        lambda: faces.ffhq_quad([(1.0, 1.0), (1.0, 1.0)], [(1.0, 1.0), (1.0, 1.0)]),  # no square
        lambda: faces.ffhq_quad([(np.nan, 1.0), (2.0, 1.0)], [(1.0, 3.0), (2.0, 3.0)]),
        lambda: faces.align(photo.astype(np.float32), square, 16),
        lambda: faces.align(photo[..., 0], square, 16),
        lambda: faces.align(photo, square[:3], 16),
        lambda: faces.align(photo, square, 0),
        lambda: faces.pick_face([faces.Face((0, 0, 4, 4), np.zeros((68, 2)), 1.0)], 1),
    ):
        with pytest.raises(UsageError) as e:
            call()
        assert "\n" not in str(e.value)
    with pytest.raises(MocohdError, match="no face found"):
        faces.pick_face([], None, "me.jpg")


def test_gaussian_blur_is_scipys():
    """The padding's blur is scipy.ndimage.gaussian_filter(img, [s, s, 0]) with its defaults."""
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy (the test extra) is the reference")
    img = np.random.default_rng(0).uniform(0, 255, (37, 53, 3)).astype(np.float32)
    for sigma in (0.3, 1.0, 2.6, 11.0):  # radius 1 to 44: wider than the image's height
        want = ndimage.gaussian_filter(img, [sigma, sigma, 0])
        np.testing.assert_allclose(faces.gaussian_blur(img, sigma), want, atol=2e-3)


def test_which_generators_depict_faces():
    assert depicts({"depicts": "faces"}) == "faces"
    ffhq = parse_target("ffhq")
    assert ffhq.depicts == "faces"  # fetch records it in the file's source
    assert depicts({"repo": ffhq.repo_id, "file": ffhq.filename}) == "faces"  # a file fetched before that
    assert depicts({"repo": parse_target("church").repo_id, "file": parse_target("church").filename}) is None
    assert depicts({}) is None


# ---------------------------------------------------------------- the detector


@needs_extra
def test_the_detector_finds_the_astronauts_face(reference):
    found = faces.detect_landmarks(read_frame(PHOTO))
    assert len(found) == 1
    face = found[0]
    assert face.landmarks.shape == (68, 2) and face.score > 0.5
    assert np.abs(np.subtract(face.box, reference["box"])).max() <= 2
    eyes, mouth = faces.eyes_and_mouth(face.landmarks)
    want_eyes, want_mouth = faces.eyes_and_mouth(reference["detected/landmarks"])
    np.testing.assert_allclose(eyes, want_eyes, atol=1.5)
    np.testing.assert_allclose(mouth, want_mouth, atol=2)
    # and in a larger photo, detected in a smaller copy: the same face, in the photo's pixels
    big = np.asarray(Image.fromarray(read_frame(PHOTO)).resize((576, 576), Image.Resampling.LANCZOS))
    (again,) = faces.detect_landmarks(big, detect_size=192)
    np.testing.assert_allclose(faces.eyes_and_mouth(again.landmarks)[0], want_eyes * 3, atol=6)


def test_without_the_extra_detection_says_what_to_install(monkeypatch):
    monkeypatch.setattr(faces, "dlib", None)
    faces._models.cache_clear()
    try:
        assert not faces.available()
        with pytest.raises(MocohdError) as e:
            faces.detect_landmarks(np.zeros((8, 8, 3), np.uint8))
        assert str(e.value) == faces.MISSING and "pip install 'mocohd-cli[faces]'" in str(e.value)
    finally:
        faces._models.cache_clear()


# ---------------------------------------------------------------- the command


def two_faces() -> Image.Image:
    """The astronaut twice: a smaller copy on the left (face 0), the photo on the right (face 1)."""
    photo = Image.open(PHOTO).convert("RGB")
    canvas = Image.new("RGB", (340, 200), (128, 128, 128))
    canvas.paste(photo.resize((134, 134), Image.Resampling.LANCZOS), (0, 30))
    canvas.paste(photo, (148, 4))
    return canvas


@pytest.fixture
def generator(tmp_path):
    """A tiny 16 px generator's file, and one whose provenance says it depicts faces."""
    G = randomized_generator(tiny_config(16))
    plain = tmp_path / "g.safetensors"
    save_canonical(plain, G)
    face = tmp_path / "faces.safetensors"
    canonical.save_model(
        face, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict(), source={"depicts": "faces"}
    )
    return str(plain), str(face)


def invert(capsys, photo, g, *more):
    return run(capsys, "invert", str(photo), "--image", g, "--loss", "pixel", "--steps", "1", *more)


def test_align_without_the_extra_is_one_line_before_anything_loads(capsys, monkeypatch, generator):
    monkeypatch.setattr(faces, "available", lambda: False)
    code, _, err = invert(capsys, PHOTO, "no-such-generator", "--align")
    assert code == 1 and err.strip() == f"error: {faces.MISSING}", err
    code, _, err = invert(capsys, PHOTO, "no-such-generator", "--face", "0")  # --face asks for alignment
    assert code == 1 and "mocohd-cli[faces]" in err and len(err.strip().splitlines()) == 1, err


def test_a_face_generator_without_the_extra_notes_it_and_goes_on(capsys, monkeypatch, generator, isolated_store):
    monkeypatch.setattr(faces, "available", lambda: False)
    plain, face = generator
    code, out, err = invert(capsys, PHOTO, face, "--name", "a")
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "depicts faces" in notes[0] and "mocohd-cli[faces]" in notes[0], err
    assert load_latent("a").info["crop"] == "center" and "faces" not in load_latent("a").info
    code, _, err = invert(capsys, PHOTO, face, "--name", "b", "--no-align")  # said: no note
    assert code == 0 and "note:" not in err, err
    code, _, err = invert(capsys, PHOTO, plain, "--name", "c")  # not a face generator: nothing to say
    assert code == 0 and "note:" not in err, err


def test_contradictory_options_are_usage_errors(capsys, generator):
    plain, _ = generator
    for more in (["--face", "0", "--no-align"], ["--align", "--crop", "none"], ["--face", "-1"]):
        code, _, err = invert(capsys, PHOTO, plain, *more)
        assert code == 2 and len(err.strip().splitlines()) == 1, (more, err)


@needs_extra
def test_no_face_and_a_face_the_photo_lacks(capsys, tmp_path, generator):
    plain, face = generator
    blank = tmp_path / "wall.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[:, None, None] * 4, (1, 64, 3))).save(blank)
    code, _, err = invert(capsys, blank, plain, "--align")
    assert (
        code == 1
        and err.strip() == f"error: {blank}: no face found to align (a photo that is aligned already: --no-align)"
    )
    code, _, err = invert(capsys, blank, face)  # by default on a face generator, too
    assert code == 1 and "no face found" in err and len(err.strip().splitlines()) == 1
    code, _, err = invert(capsys, PHOTO, plain, "--face", "5")
    assert code == 2 and err.strip() == f"error: --face 5: {PHOTO} has 1 face (--face 0)", err


@needs_extra
def test_the_faces_found_are_listed_and_the_largest_aligned(capsys, tmp_path, generator, isolated_store):
    plain, face = generator
    group = tmp_path / "group.png"
    two_faces().save(group)
    code, out, err = invert(capsys, group, face, "--name", "group")  # aligned by default: the generator says faces
    assert code == 0, err
    lines = out.splitlines()
    at = lines.index(f"{group}: 2 face(s) found; box: left, top, right, bottom in pixels")
    assert lines[at + 1].startswith("  face 0: box (") and "<- aligned" not in lines[at + 1]
    assert lines[at + 2].startswith("  face 1: box (")
    assert lines[at + 2].endswith("<- aligned (the largest; --face N picks another)")
    info = load_latent("group").info
    assert info["crop"] == "ffhq-align" and info["faces"][0]["face"] == 1 and info["faces"][0]["faces"] == 2
    assert info["faces"][0]["box"][0] > 148  # in the photo pasted at x = 148
    code, out, err = invert(capsys, group, plain, "--face", "0", "--name", "small")
    assert code == 0, err
    assert any(line.startswith("  face 0: box (") and line.endswith("  <- aligned") for line in out.splitlines())
    assert load_latent("small").info["faces"][0]["box"][2] < 148  # the copy left of the photo


@needs_extra
def test_render_start_from_a_photo_aligns_it_as_invert_does(tmp_path, generator, isolated_store):
    """`render --start PHOTO` on a face generator cuts the photo as `invert` does (FFHQ's alignment),
    so its stored latent says so; `--start` from the same photo of a plain generator is the centre crop."""
    from mocohd_cli.loaders import load_image_generator
    from mocohd_cli.loaders.motion_models import save_motion
    from mocohd_cli.motion import MotionConfig, MotionGenerator
    from mocohd_cli.pca import fit_pca
    from mocohd_cli.render import RenderConfig, render

    plain, face = generator
    G = load_image_generator(face)
    basis = fit_pca(G, samples=2000, batch=500)
    M = MotionGenerator(MotionConfig(w_dim=G.w_dim, noise_dim=8, h_dim=8, n_pca=4), basis.components, basis.stdev)
    m = tmp_path / "m.safetensors"
    save_motion(m, M, image={"image_name": "faces", "image_sha256": G.identity["weights_sha256"]})
    for g, name in ((face, "astro-face"), (plain, "astro-plain")):
        photo = tmp_path / f"{name}.png"
        photo.write_bytes(PHOTO.read_bytes())
        config = RenderConfig(
            motion=m, image=g, frames=2, start=[str(photo)], device="cpu", invert_options=dict(steps=1, loss="pixel")
        )
        assert render(tmp_path / name, config).videos == 1
    assert load_latent("astro-face").info["crop"] == "ffhq-align" and load_latent("astro-face").info["faces"]
    assert load_latent("astro-plain").info["crop"] == "center" and "faces" not in load_latent("astro-plain").info
