"""`mocohd invert` beyond StyleGAN2: StyleGAN3 (w and w+, no noise maps) and BigGAN (z and a soft
class mix), their latent files, and `render --start` with them.

The generators are tiny and random (the 16 px StyleGAN3-T of tests/test_stylegan3.py, the 32 px
BigGAN-deep of tests/test_biggan.py) and the photos are their own images of known latents, so an
inversion is scored against the truth (PSNR of the reproduced image, the latent itself).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors import safe_open

from mocohd_cli import MocohdError, render as R
from mocohd_cli.errors import UsageError
from mocohd_cli.formats import canonical, read_any
from mocohd_cli.frames import synthesize
from mocohd_cli.generators.stylegan3 import StyleGAN3Config, StyleGAN3Generator
from mocohd_cli.invert import invert, w_stats
from mocohd_cli.loaders import load_image_generator
from mocohd_cli.loaders.latents import Latent, check_latent, load_latent, save_latent
from mocohd_cli.loaders.motion_models import save_motion
from mocohd_cli.motion import MotionConfig, MotionGenerator
from mocohd_cli.pca import fit_pca

from .conftest import run
from .support.biggan_reference import TINY, make_reference
from .test_invert import png_bytes, psnr, tiny_vgg, to_uint8, trained_looking_generator

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny forwards (tests/conftest.py)

SG3_DATA = Path(__file__).parent / "data" / "stylegan3_reference.safetensors"
MAPPING_SCALE = 40.0  # StyleGAN3's mapping weights: 0.4 x their initial scale (1 / lr_mul = 100)
EMBED_SCALE = 40.0  # BigGAN's class embedding, scaled up (tiny_biggan)
BIGGAN_PSI = 0.5  # the truncation BigGAN's photos are made, inverted and rendered at


@contextmanager
def one_thread_now():
    """conftest's ``one_thread`` for module-scoped fixtures (set up before any function-scoped one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def tiny_stylegan3() -> StyleGAN3Generator:
    """The 16 px StyleGAN3-T of tests/test_stylegan3.py (NVIDIA's 't16' reference weights, 8 w's),
    its mapping weights scaled up so that w's spread: images of random w's then differ clearly
    (12-29 dB PSNR from the mean w's image) while w -> image stays as smooth as a trained
    generator's. (At the full initial scale the random input layer turns the Fourier features by
    angles that swing with w, and 200 steps of the pixel loss stop at 25-28 dB in space w.)"""
    with safe_open(str(SG3_DATA), "pt") as f:
        cfg = json.loads(f.metadata()["configs"])["t16"]
        state = {k[len("t16/state/") :]: f.get_tensor(k) for k in f.keys() if k.startswith("t16/state/")}
    G = StyleGAN3Generator(StyleGAN3Config.from_dict(cfg)).eval()
    G.load_state_dict(state)
    with torch.no_grad():
        for i in range(G.cfg.mapping_layers):
            getattr(G.mapping, f"fc{i}").weight.mul_(MAPPING_SCALE)
    return G.requires_grad_(False)


def stored(G, path: Path, family: str):
    """``G`` as a canonical image file, loaded back (its identity: the file's name and weights sha256)."""
    canonical.save_model(path, G.state_dict(), kind="image", family=family, config=G.cfg.to_dict())
    return load_image_generator(path, device="cpu").requires_grad_(False)


def motion_for(G, path: Path, n_pca: int = 6):
    """A random motion model 'trained with' G (its PCA basis, its weights sha256), saved at ``path``;
    its steps weigh 20 (a random LSTM's outputs are small) so that a few frames move visibly."""
    basis = fit_pca(G, samples=1000, batch=250)
    torch.manual_seed(0)
    M = MotionGenerator(
        MotionConfig(w_dim=G.w_dim, noise_dim=8, h_dim=8, n_pca=n_pca, w_residual=20.0),
        basis.components[:n_pca],
        basis.stdev[:n_pca],
    )
    save_motion(path, M, image={"image_name": G.identity["name"], "image_sha256": G.identity["weights_sha256"]})
    return path


def latent_image(G, latent: Latent, truncation: float = 1.0) -> torch.Tensor:
    with torch.no_grad():
        ws = latent.ws[:, 0] if G.c_dim else latent.ws
        return synthesize(G, ws, latent.noise, latent.classes, truncation)


def frames_of(folder: Path) -> list[np.ndarray]:
    return [iio.imread(p) for p in sorted(folder.glob("*.png"))]


def uint8_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(float) - b.astype(float)) ** 2).mean()
    return float(10 * np.log10(255**2 / max(mse, 1e-9)))


# ---------------------------------------------------------------- StyleGAN3


@pytest.fixture(scope="module")
def sg3(tmp_path_factory):
    """(the tiny StyleGAN3 as stored, its file, a motion file, known w's, their images, their latent
    found with the pixel loss)."""
    folder = tmp_path_factory.mktemp("sg3")
    with one_thread_now():
        G = stored(tiny_stylegan3(), folder / "sg3.safetensors", "stylegan3")
        with torch.no_grad():
            w = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(5)))
            images = synthesize(G, w[:, None].expand(-1, G.num_ws, -1))
        latent = invert(G, images, steps=120, loss="pixel")
        return G, folder / "sg3.safetensors", motion_for(G, folder / "m.safetensors"), w, images, latent


def test_stylegan3_pixel_inversion_recovers_known_ws(sg3):
    G, _, _, w, images, latent = sg3
    assert (latent.generator, latent.resolution, latent.noise, latent.classes) == ("stylegan3", 16, None, None)
    assert latent.ws.shape == (2, 8, G.w_dim) and (latent.ws == latent.ws[:, :1]).all()  # 8 w's, space w
    assert min(psnr(latent_image(G, latent), images)) > 30
    start = latent_image(G, Latent(G.mapping.w_avg.expand(2, 8, -1).clone(), generator="stylegan3", resolution=16))
    assert max(psnr(start, images)) < 30  # where it starts is far from it
    mean = w_stats(G)[0]  # the w itself, not just the image: well within the way from where it starts
    assert ((latent.ws[:, 0] - w).norm(dim=1) / (w - mean).norm(dim=1)).max() < 0.5
    assert latent.image["image_sha256"] == G.identity["weights_sha256"] and "best_step" in latent.info


def test_stylegan3_w_plus_has_a_w_per_layer_and_no_noise(sg3):
    G, _, _, _, images, _ = sg3
    latent = invert(G, images[:1], steps=40, space="w+", loss="pixel")
    assert latent.space == "w+" and latent.ws.shape == (1, 8, G.w_dim) and latent.noise is None
    assert not (latent.ws == latent.ws[:, :1]).all()
    early = invert(G, images[:1], steps=1, space="w+", loss="pixel")  # lr 0 at step 0: the start
    assert latent.distance[0] < 0.5 * early.distance[0]


def test_stylegan3_latent_round_trips_and_is_checked_against_its_generator(sg3, tmp_path, capsys):
    G, _, _, _, _, latent = sg3
    header = save_latent(latent, "me")
    assert header.family == "stylegan3-w"
    assert header.config["resolution"] == 16 and header.config["num_ws"] == 8 and header.config["noise"] is False
    back = load_latent("me")
    assert torch.equal(back.ws, latent.ws) and back.noise is None and back.classes is None
    assert (back.generator, back.resolution, back.space, back.image) == ("stylegan3", 16, "w", latent.image)
    check_latent(back, G)
    code, out, err = run(capsys, "info", "me")
    assert code == 0 and "stylegan3-w" in out and "8 w's of size 32" in out and "noise maps none" in out
    # not with another generator: its weights, its family or its sizes
    other = trained_looking_generator()  # a 16 px StyleGAN2 with w 32
    with pytest.raises(MocohdError, match="belongs to the image generator"):
        check_latent(back, other)
    back.image = {}
    with pytest.raises(MocohdError, match="a stylegan3 latent but 'tiny' is a stylegan2 generator"):
        check_latent(back, other)
    with pytest.raises(UsageError, match="no noise maps"):
        Latent(latent.ws, [torch.zeros(2, 1, 4, 4)], generator="stylegan3", resolution=16)
    with pytest.raises(UsageError, match="give the resolution"):
        Latent(latent.ws, generator="stylegan3")


def test_render_start_with_stylegan3_and_a_camera(sg3, tmp_path, capsys):
    """render --start: frame 0 is the inverted image (the camera never moves frame 0), later
    frames move; --rotate turns them."""
    G, gpath, mpath, _, images, latent = sg3
    save_latent(latent, "me")
    args = [
        "render",
        "--motion",
        str(mpath),
        "--image",
        str(gpath),
        "-n",
        "4",
        "--start",
        "me",
        "--device",
        "cpu",
        "--fps",
        "4",
    ]
    code, out, err = run(capsys, *args[:1], str(tmp_path / "still"), *args[1:])
    assert code == 0, err
    code, out, err = run(capsys, *args[:1], str(tmp_path / "turned"), *args[1:], "--rotate", "90")
    assert code == 0, err
    photos, own = to_uint8(images), to_uint8(latent_image(G, latent))
    for name in ("still", "turned"):
        for v in range(2):  # one video (a PNG folder) per latent
            frames = frames_of(tmp_path / f"{name}_{v:03d}")
            assert len(frames) == 4
            assert np.abs(frames[0].astype(int) - own[v].astype(int)).max() <= 1  # exactly the latent's image
            assert uint8_psnr(frames[0], photos[v]) > 30  # the photo, within the inversion's error
            assert np.abs(frames[3].astype(float) - frames[0].astype(float)).mean() > 1.0  # it moves
    still, turned = frames_of(tmp_path / "still_000"), frames_of(tmp_path / "turned_000")
    assert np.array_equal(still[0], turned[0]) and not np.array_equal(still[3], turned[3])


# ---------------------------------------------------------------- BigGAN


def tiny_biggan(path: Path):
    """The 32 px BigGAN-deep of tests/test_biggan.py (z 8, class embedding 8, 1000 classes), stored,
    its class embedding scaled up so that a class weighs in the image as z does (random, the
    embeddings are about 0.05 long against z's 2.8: every class would make nearly the same image)."""
    folder = path.parent / "port"
    folder.mkdir()
    torch.save(make_reference().state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(TINY))
    m = read_any(folder / "pytorch_model.bin")
    m.tensors["synthesis.embed.weight"] = m.tensors["synthesis.embed.weight"] * EMBED_SCALE
    canonical.save_model(path, m.tensors, kind="image", family=m.family, config=m.config)
    return load_image_generator(path, device="cpu").requires_grad_(False)


@pytest.fixture(scope="module")
def biggan(tmp_path_factory):
    """(the tiny BigGAN, its file, a motion file, known w's, their class vectors (a class and a
    mix of two), their images at truncation BIGGAN_PSI, their latent found with the pixel loss)."""
    folder = tmp_path_factory.mktemp("biggan")
    with one_thread_now():
        G = tiny_biggan(folder / "bg.safetensors")
        with torch.no_grad():
            w = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(5)))
        c = torch.zeros(2, G.c_dim)
        c[0, 207] = 1
        c[1, 1], c[1, 980] = 0.3, 0.7
        with torch.no_grad():
            images = synthesize(G, w, None, c, BIGGAN_PSI)
        latent = invert(G, images, steps=150, loss="pixel", truncation=BIGGAN_PSI)
        return G, folder / "bg.safetensors", motion_for(G, folder / "m.safetensors"), w, c, images, latent


def test_biggan_pixel_inversion_recovers_z_and_the_class_embedding(biggan):
    G, _, _, w, c, images, latent = biggan
    assert (latent.generator, latent.resolution, latent.noise, latent.space) == ("biggan-deep", 32, None, "w")
    assert latent.ws.shape == (2, 1, G.z_dim) and latent.classes.shape == (2, G.c_dim)
    assert torch.allclose(latent.classes.sum(dim=1), torch.ones(2)) and (latent.classes >= 0).all()  # a mix
    assert latent.ws.abs().max() <= 2  # BigGAN's truncated normal: w = mapping(z)
    assert min(psnr(latent_image(G, latent, BIGGAN_PSI), images)) > 30
    start = latent_image(
        G,
        Latent(
            torch.zeros(2, 1, G.z_dim),
            generator="biggan-deep",
            resolution=32,
            classes=torch.full((2, G.c_dim), 1 / G.c_dim),
        ),
        BIGGAN_PSI,
    )
    assert max(psnr(start, images)) < 30  # where it starts (w 0, every class equally) is far from it
    assert ((latent.ws[:, 0] - w).norm(dim=1) / w.norm(dim=1)).max() < 0.3  # w itself
    # the class vector is found up to what the embedding sees (1000 classes in 8 dimensions: many
    # mixes embed alike), so its embedding is compared, and the one class of photo 0 comes first
    with torch.no_grad():
        E = G.synthesis.embed
        assert ((E(latent.classes) - E(c)).norm(dim=1) / E(c).norm(dim=1)).max() < 0.3
    assert int(latent.classes[0].argmax()) == 207
    assert latent.info["truncation"] == BIGGAN_PSI and latent.info["classes_start"] == []


def test_biggan_start_classes_space_and_truncation(biggan):
    G, _, _, _, _, images, _ = biggan
    early = invert(G, images[:1], steps=1, loss="pixel", classes=["golden_retriever", "1"])
    assert early.classes[0].topk(2).indices.sort().values.tolist() == [1, 207]  # the mix starts on them
    assert early.classes[0, [1, 207]].sum() > 0.9 and early.info["classes_start"] == [207, 1]
    with pytest.raises(UsageError, match="w\\+ has no meaning for BigGAN"):
        invert(G, images, steps=1, loss="pixel", space="w+")
    with pytest.raises(UsageError, match="must be in \\(0, 1\\]"):
        invert(G, images, steps=1, loss="pixel", truncation=1.5)
    with pytest.raises(MocohdError, match="did you mean 'golden_retriever'"):
        invert(G, images, steps=1, loss="pixel", classes=["golden_retreiver"])


def test_biggan_latent_round_trips(biggan, capsys):
    G, _, _, _, _, _, latent = biggan
    header = save_latent(latent, "dog")
    assert header.family == "biggan-deep-w" and header.config["c_dim"] == 1000 and header.config["num_ws"] == 1
    back = load_latent("dog")
    assert torch.equal(back.ws, latent.ws) and torch.equal(back.classes, latent.classes) and back.noise is None
    assert (back.generator, back.resolution, back.info["truncation"]) == ("biggan-deep", 32, BIGGAN_PSI)
    check_latent(back, G)
    code, out, err = run(capsys, "info", "dog")
    assert code == 0 and "biggan-deep-w" in out and "a mix of 1000 classes per photo, found at truncation 0.5" in out
    with pytest.raises(UsageError, match="needs classes"):
        Latent(latent.ws, generator="biggan-deep", resolution=32)
    with pytest.raises(UsageError, match="classes are for BigGAN"):
        Latent(torch.zeros(1, 6, 8), classes=torch.ones(1, 10))


def test_the_perceptual_loss_brings_both_families_closer(sg3, biggan):
    """With a tiny VGG-shaped network of random weights: the distance falls by far."""
    for G, images in ((sg3[0], sg3[4][:1]), (biggan[0], biggan[5][:1])):
        kw = dict(loss="perceptual", perceptual=tiny_vgg(), truncation=BIGGAN_PSI if G.c_dim else 1.0)
        latent, start = invert(G, images, steps=30, **kw), invert(G, images, steps=1, **kw)
        assert latent.distance[0] < 0.3 * start.distance[0], (G.family, latent.distance, start.distance)


def test_a_stylegan2_latent_file_of_before_reads_as_it_did(tmp_path):
    """Files written before StyleGAN3 and BigGAN latents: family stylegan2-w, no generator in them."""
    ws, noise = torch.randn(1, 6, 32), [torch.randn(1, 1, r, r) for r in (4, 8, 8, 16, 16)]
    tensors = {"ws": ws, **{f"noise.{i}": t for i, t in enumerate(noise)}}
    config = {
        "loss": "pixel",
        "steps": 5,
        "space": "w",
        "count": 1,
        "num_ws": 6,
        "w_dim": 32,
        "resolution": 16,
        "noise": True,
        "distance": [0.1],
        "photos": [{"file": "a.png", "sha256": "1" * 64}],
    }
    canonical.save_model(
        tmp_path / "old.safetensors",
        tensors,
        kind="latent",
        family="stylegan2-w",
        config=config,
        source={"format": "mocohd"},
        image={"image_name": "tiny", "image_sha256": "ab" * 32},
    )
    back = load_latent(tmp_path / "old.safetensors")
    assert (back.generator, back.resolution, back.classes, back.info) == (
        "stylegan2",
        16,
        None,
        {"loss": "pixel", "steps": 5},
    )
    assert torch.equal(back.ws, ws) and all(torch.equal(a, b) for a, b in zip(back.noise, noise, strict=True))
    check_latent(back, trained_looking_generator())


def test_render_start_with_biggan_moves_from_the_photos_class_mix(biggan, tmp_path):
    """render --start with BigGAN: each video shows its latent's class vector, frame 0 is the
    inverted image at the truncation it was found at, later frames move; --class-to moves the
    class; --class cannot be given with --start; another truncation is said."""
    G, gpath, mpath, _, _, images, latent = biggan
    save_latent(latent, "dog")
    notes = []
    r = R.render(
        tmp_path / "v",
        R.RenderConfig(motion=mpath, image=gpath, frames=4, start="dog", truncation=BIGGAN_PSI, device="cpu"),
        on_start=lambda total, note: notes.append(note),
    )
    assert r.videos == 2 and "class mix of the start latent(s), mostly" in notes[0]
    photos, own = to_uint8(images), to_uint8(latent_image(G, latent, BIGGAN_PSI))
    for v in range(2):
        frames = frames_of(tmp_path / f"v_{v:03d}")
        assert len(frames) == 4
        assert np.abs(frames[0].astype(int) - own[v].astype(int)).max() <= 1
        assert uint8_psnr(frames[0], photos[v]) > 30
        assert np.abs(frames[3].astype(float) - frames[0].astype(float)).mean() > 1.0
    # the library's frames: the same
    M = R.load_motion(mpath)
    first = next(iter(R.render_frames(M, G, 2, videos=2, start=load_latent("dog"), truncation=BIGGAN_PSI)))
    assert np.abs(first.numpy().astype(int) - own.astype(int)).max() <= 1
    moved = list(R.render_frames(M, G, 4, videos=2, start=load_latent("dog"), truncation=BIGGAN_PSI, class_to=207))
    assert np.array_equal(moved[0].numpy(), first.numpy())
    with pytest.raises(MocohdError, match="--class does not apply with --start"):
        R.render(
            tmp_path / "x.mp4", R.RenderConfig(motion=mpath, image=gpath, start="dog", classes=["207"], device="cpu")
        )
    notes = []
    R.render(
        tmp_path / "t.mp4",
        R.RenderConfig(motion=mpath, image=gpath, frames=2, start="dog", device="cpu"),
        on_start=lambda total, note: notes.append(note),
    )
    assert "found at truncation 0.5: frame 0 shows the photo only at --truncation 0.5" in notes[0]


def test_render_start_from_a_photo_with_biggan_inverts_it_at_the_renders_truncation(biggan, tmp_path):
    G, gpath, mpath, _, _, images, _ = biggan
    photo = to_uint8(images)[0]
    iio.imwrite(tmp_path / "dog.png", photo)
    r = R.render(
        tmp_path / "v",
        R.RenderConfig(
            motion=mpath,
            image=gpath,
            frames=2,
            start=[str(tmp_path / "dog.png")],
            truncation=BIGGAN_PSI,
            device="cpu",
            invert_options=dict(steps=80, loss="pixel"),
        ),
    )
    assert r.videos == 1 and load_latent("dog").info["truncation"] == BIGGAN_PSI
    assert uint8_psnr(frames_of(tmp_path / "v")[0], photo) > 30


def test_cli_inverts_a_photo_into_biggan(biggan, tmp_path, capsys, isolated_store):
    G, gpath, _, _, _, images, _ = biggan
    (tmp_path / "dog.png").write_bytes(png_bytes(to_uint8(images)[0]))
    code, out, err = run(
        capsys,
        "invert",
        str(tmp_path / "dog.png"),
        "--image",
        str(gpath),
        "--loss",
        "pixel",
        "--steps",
        "30",
        "--class",
        "golden_retriever",
        "--truncation",
        "0.5",
    )
    assert code == 0, err
    assert "dog.png: classes 207 golden retriever" in out and "stored latent dog" in out
    assert f"next: mocohd render dog.mp4 --image {gpath} --start dog --truncation 0.5" in out
    latent = load_latent("dog")
    assert latent.generator == "biggan-deep" and latent.info["truncation"] == 0.5 and latent.info["crop"] == "center"
    code, _, err = run(
        capsys,
        "invert",
        str(tmp_path / "dog.png"),
        "--image",
        str(gpath),
        "--loss",
        "pixel",
        "--space",
        "w+",
        "--name",
        "plus",
    )
    assert code == 2 and "w+ has no meaning for BigGAN" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(
        capsys,
        "invert",
        str(tmp_path / "dog.png"),
        "--image",
        str(gpath),
        "--loss",
        "pixel",
        "--class",
        "1000",
        "--name",
        "bad",
    )
    assert code == 1 and "out of range" in err and len(err.strip().splitlines()) == 1


def test_cli_inverts_a_photo_into_stylegan3_in_w_plus(sg3, tmp_path, capsys):
    _, gpath, _, _, images, _ = sg3
    (tmp_path / "me.png").write_bytes(png_bytes(to_uint8(images)[0]))
    code, out, err = run(
        capsys,
        "invert",
        str(tmp_path / "me.png"),
        "--image",
        str(gpath),
        "--loss",
        "pixel",
        "--steps",
        "10",
        "--space",
        "w+",
    )
    assert code == 0, err
    latent = load_latent("me")
    assert (latent.generator, latent.space, latent.noise) == ("stylegan3", "w+", None)
    code, _, err = run(
        capsys,
        "invert",
        str(tmp_path / "me.png"),
        "--image",
        str(gpath),
        "--loss",
        "pixel",
        "--truncation",
        "0.7",
        "--name",
        "t",
    )
    assert code == 2 and "truncation is for BigGAN" in err
