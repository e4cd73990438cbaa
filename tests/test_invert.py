"""`mocohd invert`: photos read safely, the projector's recipe, latents stored and loaded.

The generator is a tiny 16 px StyleGAN2 made from random weights, toned like a trained one
(images mostly within [-1, 1], weak noise), and the photos are its own images of known w's,
so that an inversion can be scored against the truth: PSNR of the reproduced image, and
the distance the run reports.
"""

from __future__ import annotations

import io
import json
import math
import signal
import struct
import types
import zlib
from itertools import pairwise

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from mocohd_cli import MocohdError, invert as invert_mod
from mocohd_cli.errors import UsageError
from mocohd_cli.formats import read_any
from mocohd_cli.frames import synthesize
from mocohd_cli.invert import invert, learning_rate, noise_regularizer, w_noise_scale
from mocohd_cli.loaders.latents import Latent, load_latent, save_latent
from mocohd_cli.loaders.vgg16 import load_vgg16
from mocohd_cli.perceptual import CONV_INDICES, TAP_INDICES, VGG16, VGG16Config, pixel_distance, ssim
from mocohd_cli.photos import read_photo

from .conftest import mocohd, randomized_generator, run, save_canonical, store_files, tiny_config
from .support.hub_server import FakeHub

TINY_WIDTHS = (4, 8, 8, 16, 16)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny forwards (tests/conftest.py)


def trained_looking_generator(resolution: int = 16, seed: int = 0):
    """A random tiny generator toned like a trained one: images mostly within [-1, 1] and
    noise maps that add detail (strength 0.01-0.05) rather than make the image."""
    G = randomized_generator(tiny_config(resolution), seed=seed).requires_grad_(False)
    with torch.no_grad():
        for block in G.synthesis.blocks():
            block.torgb.weight.mul_(0.3)
            block.torgb.bias.mul_(0.3)
        for layer in G.synthesis.layers():
            layer.noise_strength.mul_(0.1)
    G.identity = {"name": "tiny", "weights_sha256": "ab" * 32}
    return G


def known_images(G, n: int = 3, seed: int = 5):
    """(w's [n, w_dim], images [n, 3, R, R]) of G, with noise maps of their own."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = G.mapping(torch.randn(n, G.z_dim, generator=gen))
        noise = G.synthesis.make_noise(n, generator=gen)
        return w, synthesize(G, w[:, None].expand(-1, G.num_ws, -1), noise)


def psnr(a, b) -> list[float]:
    """Per image, in dB, of images in [-1, 1] (peak 2)."""
    return (-10 * torch.log10(((a - b) / 2).square().mean(dim=(1, 2, 3)))).tolist()


def rendered(G, latent: Latent) -> torch.Tensor:
    with torch.no_grad():
        return synthesize(G, latent.ws, latent.noise)


def tiny_vgg(seed: int = 1) -> VGG16:
    torch.manual_seed(seed)
    return VGG16(VGG16Config(widths=TINY_WIDTHS)).eval().requires_grad_(False)


def to_uint8(images) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------- the recipe


def test_the_projector_schedule():
    """stylegan2-ada-pytorch projector.py: lr ramps up over 5% of the steps and down along a half
    cosine over the last 25%; the w noise (w_std x 0.05) fades out quadratically by 75%."""
    assert learning_rate(0, 1000) == 0
    assert learning_rate(25, 1000) == pytest.approx(0.05)
    assert learning_rate(50, 1000) == learning_rate(500, 1000) == pytest.approx(0.1)
    assert learning_rate(875, 1000) == pytest.approx(0.05)
    assert learning_rate(999, 1000) < 1e-4
    assert w_noise_scale(0, 1000, 2.0) == pytest.approx(0.1)
    assert w_noise_scale(375, 1000, 2.0) == pytest.approx(0.1 * 0.25)
    assert w_noise_scale(750, 1000, 2.0) == w_noise_scale(900, 1000, 2.0) == 0


def test_the_noise_regulariser_is_per_image_over_a_pyramid():
    torch.manual_seed(0)
    maps = [torch.randn(2, 1, 4, 4), torch.randn(2, 1, 16, 16)]

    def by_hand(n):  # one image's map [r, r]: shifted products at 16 and 8 px (the pyramid stops at 8)
        total, x = 0.0, n
        while True:
            total += float((x * torch.roll(x, 1, 1)).mean()) ** 2 + float((x * torch.roll(x, 1, 0)).mean()) ** 2
            if x.shape[0] <= 8:
                return total
            x = torch.nn.functional.avg_pool2d(x[None, None], 2)[0, 0]

    expected = [sum(by_hand(m[i, 0]) for m in maps) for i in range(2)]
    assert noise_regularizer(maps).tolist() == pytest.approx(expected, rel=1e-5)


def test_pixel_loss_recovers_known_ws():
    G = trained_looking_generator()
    w, images = known_images(G)
    latent = invert(G, images, steps=200, loss="pixel")
    assert min(psnr(rendered(G, latent), images)) > 30
    assert ((latent.ws[:, 0] - w).norm(dim=1) / w.norm(dim=1)).max() < 0.2  # the w itself, not just the image
    assert (latent.ws == latent.ws[:, :1]).all() and latent.space == "w"  # one w for every layer
    assert len(latent.distance) == 3 and latent.info["steps"] == 200 and not latent.info["stopped"]
    assert latent.image == {"image_name": "tiny", "image_sha256": "ab" * 32}
    # the distance recorded is the distance of the latent returned
    assert pixel_distance(rendered(G, latent), images).tolist() == pytest.approx(latent.distance, rel=1e-4)


def test_w_plus_and_uint8_photos():
    G = trained_looking_generator()
    _, images = known_images(G, n=2, seed=7)
    photos = torch.from_numpy(to_uint8(images))  # what read_photo gives
    latent = invert(G, photos, steps=200, space="w+", loss="pixel")
    assert latent.space == "w+" and latent.ws.shape == (2, G.num_ws, G.w_dim)
    assert not (latent.ws == latent.ws[:, :1]).all()
    assert min(psnr(rendered(G, latent), images)) > 30


def test_perceptual_loss_brings_the_image_closer():
    """With a tiny VGG-shaped network of random weights: the distance falls by far and the
    image gets much closer than where the search starts (the average w)."""
    G = trained_looking_generator()
    _, images = known_images(G)
    seen = []
    latent = invert(
        G,
        images,
        steps=150,
        loss="perceptual",
        perceptual=tiny_vgg(),
        progress=lambda step, steps, dist: seen.append(dist),
    )
    assert len(seen) == 150 and all(torch.equal(a, b) or (b <= a).all() for a, b in pairwise(seen))
    assert (torch.tensor(latent.distance) < 0.25 * seen[0]).all()
    start = invert(G, images, steps=1, loss="perceptual", perceptual=tiny_vgg())  # lr 0 at step 0: the start
    gain = [a - b for a, b in zip(psnr(rendered(G, latent), images), psnr(rendered(G, start), images), strict=True)]
    assert min(gain) > 6, gain


def test_bfloat16_synthesis():
    """dtype=torch.bfloat16: the generator (and VGG16, under autocast) compute in bfloat16; the
    optimiser, the distances and the latent stay float32."""
    G = trained_looking_generator()
    _, images = known_images(G, n=1)
    latent = invert(G, images, steps=30, loss="perceptual", perceptual=tiny_vgg(), dtype=torch.bfloat16)
    assert latent.ws.dtype == torch.float32 and math.isfinite(latent.distance[0])
    start = invert(G, images, steps=1, loss="perceptual", perceptual=tiny_vgg(), dtype=torch.bfloat16)
    assert latent.distance[0] < start.distance[0]


def test_each_photo_is_its_own_problem():
    """Photo 0's result does not depend on the photo beside it in the batch."""
    G = trained_looking_generator()
    _, images = known_images(G, n=3)
    a = invert(G, images[[0, 1]], steps=20, loss="pixel")
    b = invert(G, images[[0, 2]], steps=20, loss="pixel")
    torch.testing.assert_close(a.ws[0], b.ws[0])
    assert a.distance[0] == pytest.approx(b.distance[0], rel=1e-5)
    assert not torch.allclose(a.ws[1], b.ws[1])


def test_stop_returns_the_best_so_far():
    G = trained_looking_generator()
    _, images = known_images(G, n=2)
    calls, seen = [], []
    latent = invert(
        G,
        images,
        steps=100,
        loss="pixel",
        stop=lambda: len(calls.append(1) or calls) > 12,
        progress=lambda step, steps, dist: seen.append(dist),
    )
    assert latent.info["stopped"] and latent.info["steps"] == 12 and len(seen) == 12
    assert (torch.tensor(latent.distance) <= seen[-1] + 1e-6).all()  # the best, the last update included
    assert pixel_distance(rendered(G, latent), images).tolist() == pytest.approx(latent.distance, rel=1e-4)
    # stopped before the first step: the start, measured
    early = invert(G, images, steps=100, loss="pixel", stop=lambda: True)
    assert early.info["steps"] == 0 and all(math.isfinite(d) for d in early.distance)


def test_bad_arguments_are_refused():
    G = trained_looking_generator()
    _, images = known_images(G, n=1)
    for kw, match in [
        ({"steps": 0}, "steps"),
        ({"space": "z"}, "space"),
        ({"loss": "l1"}, "loss"),
        ({"lr": float("nan")}, "lr"),
        ({"seed": -1}, "seed"),
    ]:
        with pytest.raises(UsageError, match=match):
            invert(G, images, **{"loss": "pixel", **kw})
    with pytest.raises(UsageError, match="16 x 16.*read_photo"):
        invert(G, torch.zeros(1, 3, 8, 8), loss="pixel")
    with pytest.raises(UsageError, match=r"\[N, H, W, 3\]"):
        invert(G, torch.zeros(1, 3, 16, 16, dtype=torch.uint8), loss="pixel")
    with pytest.raises(MocohdError, match="into a progan generator is not supported"):
        invert(types.SimpleNamespace(c_dim=0, family="progan", mapping=None, synthesis=None), images, loss="pixel")
    with pytest.raises(UsageError, match="truncation is for BigGAN"):
        invert(G, images, loss="pixel", truncation=0.5)
    with pytest.raises(MocohdError, match="classes are for class-conditional"):
        invert(G, images, loss="pixel", classes=["207"])
    with pytest.raises(MocohdError, match="mocohd fetch vgg16.*--loss pixel"):
        invert(G, images, steps=1)  # the perceptual loss, and no VGG16 in the store


# ---------------------------------------------------------------- the distances


def test_vgg16_is_torchvisions_layout():
    shapes = VGG16Config().state_shapes()
    assert CONV_INDICES == (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28) and TAP_INDICES == (3, 8, 15, 22, 29)
    assert shapes["features.0.weight"] == (64, 3, 3, 3) and shapes["features.28.weight"] == (512, 512, 3, 3)
    assert sum(math.prod(s) for s in shapes.values()) == 14_714_688  # VGG16's convolutional parameters
    assert set(VGG16().state_dict()) == set(shapes)


def test_the_perceptual_distance_by_hand():
    net = tiny_vgg()
    torch.manual_seed(3)
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )

    def feats(x):
        x, out = ((x + 1) * 127.5 / 255 - mean) / std, []
        for i, layer in enumerate(net.features):
            x = layer(x)
            if i in (3, 8, 15, 22, 29):
                out.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    expected = sum(((fa - fb) ** 2).sum(dim=1).mean(dim=(1, 2)) for fa, fb in zip(feats(a), feats(b), strict=True))
    torch.testing.assert_close(net.distance(net.embed(a), net.embed(b)), expected)
    assert net.distance(net.embed(a), net.embed(a)).abs().max() == 0
    # larger than 256 px: area-resized to 256 first, as the projector does
    big = torch.rand(1, 3, 512, 512) * 2 - 1
    pooled = torch.nn.functional.avg_pool2d((big + 1) * 127.5, 2) / 127.5 - 1
    torch.testing.assert_close(net.preprocess(big), net.preprocess(pooled))


def test_ssim_and_the_pixel_distance():
    torch.manual_seed(0)
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    assert ssim((a + 1) / 2, (a + 1) / 2).tolist() == pytest.approx([1, 1])
    assert pixel_distance(a, a).abs().max() < 1e-6
    near, far = a + 0.05 * torch.randn_like(a), a + 0.5 * torch.randn_like(a)
    assert (pixel_distance(a, near) < pixel_distance(a, far)).all()
    # flat grey (0.5) against flat white (1), 5 px: MSE 0.25, SSIM its luminance term 2 x 0.5 / (0.25 + 1)
    assert pixel_distance(torch.zeros(1, 3, 5, 5), torch.ones(1, 3, 5, 5)).item() == pytest.approx(0.25 + 0.2, abs=1e-3)


# ---------------------------------------------------------------- VGG16 weights


def vgg_state_dict(widths=TINY_WIDTHS, classifier="torchvision", seed=0) -> dict:
    torch.manual_seed(seed)
    sd = {k: v.clone() for k, v in VGG16(VGG16Config(widths=widths)).state_dict().items()}
    if classifier == "torchvision":
        sd.update({"classifier.0.weight": torch.randn(8, widths[-1]), "classifier.6.bias": torch.randn(10)})
    else:  # timm's vgg16.tv_in1k
        sd.update({"pre_logits.fc1.weight": torch.randn(8, widths[-1], 1, 1), "head.fc.weight": torch.randn(10, 8)})
    return sd


def test_vgg16_weights_import_from_torchvision_and_timm_files(tmp_path, capsys):
    sd = vgg_state_dict()
    torch.save(sd, tmp_path / "vgg16-397923af.pth")
    code, out, err = run(capsys, "import", str(tmp_path / "vgg16-397923af.pth"), "--name", "vgg16")
    assert code == 0, err
    net = load_vgg16()
    assert all(torch.equal(net.state_dict()[k], sd[k]) for k in net.state_dict())
    assert net.source["format"] == "torchvision-vgg16" and net.cfg.widths == TINY_WIDTHS
    save_file(vgg_state_dict(classifier="timm"), tmp_path / "model.safetensors")  # no mocohd metadata
    m = read_any(tmp_path / "model.safetensors")
    assert (m.kind, m.source["format"]) == ("vgg16", "timm-vgg16")
    assert not any(k.startswith(("head", "pre_logits")) for k in m.tensors)
    code, out, err = run(capsys, "info", str(tmp_path / "model.safetensors"))
    assert code == 0 and "timm-vgg16" in out and "vgg16" in out
    # a batch-norm VGG, and a safetensors file that is nobody's model, are refused in one line
    bn = {**sd, "features.1.running_mean": torch.zeros(4)}
    torch.save(bn, tmp_path / "vgg16_bn.pth")
    code, _, err = run(capsys, "import", str(tmp_path / "vgg16_bn.pth"), "--name", "bn")
    assert code == 1 and "batch-norm" in err and len(err.strip().splitlines()) == 1
    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(MocohdError, match="without mocohd metadata"):
        read_any(tmp_path / "plain.safetensors")


def test_fetch_vgg16_from_the_registry_entry(tmp_path):
    """`mocohd fetch vgg16`: the shipped registry's entry (timm/vgg16.tv_in1k, model.safetensors),
    here served a tiny file of the same layout; only its features reach the store."""
    buf = tmp_path / "model.safetensors"
    save_file(vgg_state_dict(classifier="timm"), buf)
    with FakeHub() as hub:
        hub.add_file("timm/vgg16.tv_in1k", "model.safetensors", buf.read_bytes())
        (tmp_path / "registry.json").write_text(json.dumps({"models": []}))
        code, out, err = mocohd(tmp_path, hub.url, "fetch", "vgg16")
        assert code == 0, err
        assert store_files(tmp_path / "home") == ["vgg16/vgg16.safetensors"]
        code, out, err = mocohd(tmp_path, hub.url, "info", "vgg16", "--kind", "vgg16")
        assert code == 0 and "timm/vgg16.tv_in1k" in out and "timm-vgg16" in out


# ---------------------------------------------------------------- latents


def test_a_latent_round_trips_through_the_store(tmp_path, capsys):
    G = trained_looking_generator()
    _, images = known_images(G, n=2)
    photos = [{"file": "a.png", "sha256": "1" * 64}, {"file": "b.jpg", "sha256": "2" * 64}]
    latent = invert(G, images, steps=5, loss="pixel", photos=photos)
    header = save_latent(latent, "us")
    assert header.kind == "latent" and header.family == "stylegan2-w" and header.image["image_name"] == "tiny"
    back = load_latent("us")
    assert torch.equal(back.ws, latent.ws) and all(
        torch.equal(a, b) for a, b in zip(back.noise, latent.noise, strict=True)
    )
    assert (back.space, back.photos, back.distance, back.image) == (latent.space, photos, latent.distance, latent.image)
    assert back.info["steps"] == 5 and back.info["loss"] == "pixel"
    with pytest.raises(MocohdError, match="already exists"):
        save_latent(latent, "us")
    save_latent(latent, tmp_path / "us.safetensors")
    assert torch.equal(load_latent(tmp_path / "us.safetensors").ws, latent.ws)
    for args in (["info", "us", "--kind", "latent"], ["info", "us"]):
        code, out, err = run(capsys, *args)
        assert code == 0, err
        assert "latent" in out and "stylegan2-w" in out and "a.png" in out and "b.jpg" in out and "tiny" in out
    code, out, _ = run(capsys, "list")
    assert code == 0 and "us" in out and "latent" in out


# ---------------------------------------------------------------- photos


def png_bytes(array, mode=None, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def with_png_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR claims another size (its checksum fixed), its pixels untouched."""
    b = bytearray(data)
    b[16:24] = struct.pack(">II", width, height)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    return bytes(b)


def test_read_photo_modes_crops_and_orientation(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    (tmp_path / "rgb.png").write_bytes(png_bytes(rgb))
    out = read_photo(tmp_path / "rgb.png", 12)
    assert out.dtype == torch.uint8 and out.shape == (12, 12, 3)
    assert torch.equal(out, torch.from_numpy(rgb[:, 4:16]))  # the centred square, no resize needed
    assert read_photo(tmp_path / "rgb.png", 6, crop="none").shape == (6, 6, 3)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (255, 0, 0, 255)  # the top half opaque red, the rest transparent: white
    (tmp_path / "rgba.png").write_bytes(png_bytes(rgba, "RGBA"))
    out = read_photo(tmp_path / "rgba.png", 8)
    assert out[0, 0].tolist() == [255, 0, 0] and out[7, 7].tolist() == [255, 255, 255]
    grey16 = np.full((8, 8), 65535, np.uint16)
    grey16[:, :4] = 257 * 100
    (tmp_path / "g16.png").write_bytes(png_bytes(grey16))
    out = read_photo(tmp_path / "g16.png", 8)
    assert out[0, 0].tolist() == [100] * 3 and out[0, 7].tolist() == [255] * 3
    (tmp_path / "grey.png").write_bytes(png_bytes(rgb[..., 0], "L"))
    (tmp_path / "pal.gif").write_bytes(png_bytes(rgb, format="GIF"))
    for name in ("grey.png", "pal.gif"):
        assert read_photo(tmp_path / name, 8).shape == (8, 8, 3)
    # EXIF orientation 6 (rotate 90 degrees clockwise to view): the stored left half ends up on top
    side = np.zeros((16, 32, 3), np.uint8)
    side[:, :16] = 255
    img = Image.fromarray(side)
    exif = img.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    (tmp_path / "phone.jpg").write_bytes(buf.getvalue())
    out = read_photo(tmp_path / "phone.jpg", 8, crop="none").float().mean(dim=(1, 2))
    assert (out[:3] > 200).all() and (out[5:] < 50).all()


def bad_photos(tmp_path) -> dict:
    """name -> (path, what the error says)."""
    good = png_bytes(np.zeros((8, 8, 3), np.uint8))
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    files = {
        "text.png": (b"not an image at all", "not an image"),
        "empty.png": (b"", "empty file"),
        "zero.png": (with_png_size(good, 0, 0), "empty image"),
        "cut.jpg": (buf.getvalue()[: len(buf.getvalue()) // 2], "truncated"),
        "huge.png": (with_png_size(good, 8000, 8000), "64 megapixels"),
        "bomb.png": (with_png_size(good, 30000, 30000), "megapixel limit"),
    }
    out = {}
    for name, (data, says) in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = (tmp_path / name, says)
    (tmp_path / "folder").mkdir()
    out["folder"] = (tmp_path / "folder", "is a folder")
    out["missing.png"] = (tmp_path / "missing.png", "no such file")
    return out


def test_bad_photos_are_one_line_errors(tmp_path, capsys):
    save_canonical(tmp_path / "g.safetensors", trained_looking_generator())
    for name, (path, says) in bad_photos(tmp_path).items():
        with pytest.raises(MocohdError, match=says):
            read_photo(path, 16)
        code, out, err = run(
            capsys, "invert", str(path), "--image", str(tmp_path / "g.safetensors"), "--loss", "pixel", "--steps", "2"
        )
        assert code == 1, (name, err)
        assert says in err and str(path) in err and len(err.strip().splitlines()) == 1, (name, err)
    assert store_files(tmp_path / "mocohd-home") == []


def short_png(width: int, height: int, rows: int) -> bytes:
    """A well-formed RGB PNG (checksums right, its compressed stream complete) whose pixel data
    stops after ``rows`` of its ``height`` rows (Pillow fills the rest unasked)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = b"".join(b"\x00" + bytes([200]) * (3 * width) for _ in range(rows))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def test_a_dark_16_bit_photo_stays_dark_and_every_mode_is_rgb(tmp_path):
    """16-bit samples are scaled by their bit depth, never by the photo's own maximum: values
    0..200 of 65535 are black, not mid-grey."""
    dark = np.arange(64, dtype=np.uint16).reshape(8, 8) * 200 // 63
    (tmp_path / "dark.png").write_bytes(png_bytes(dark))
    assert Image.open(tmp_path / "dark.png").mode == "I;16"
    out = read_photo(tmp_path / "dark.png", 8)
    assert out.max() <= 1 and out.shape == (8, 8, 3)
    from mocohd_cli.photos import to_rgb

    ramp = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1040  # 0..65520
    for mode, dtype in (("I;16", "<u2"), ("I;16B", ">u2"), ("I", "<i4")):  # every mode Pillow keeps 16-bit samples in
        im = Image.frombytes(mode, (8, 8), ramp.astype(dtype).tobytes())
        assert to_rgb(im)[..., 0].tolist() == np.round(ramp / 257).astype(np.uint8).tolist(), mode
    assert to_rgb(Image.frombytes("I", (2, 1), np.int32([2**30, 2**31 - 1]).tobytes()), bits=32)[0, :, 0].tolist() == [
        128,
        255,
    ]
    assert to_rgb(Image.fromarray(np.float32([[0.0, 0.5, 1.0, 2.0]])))[0, :, 0].tolist() == [0, 128, 255, 255]
    for mode in ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "F"):
        assert to_rgb(Image.new(mode, (3, 2))).shape == (2, 3, 3), mode
    la = Image.fromarray(np.uint8([[[100, 255], [100, 0]]]), "LA")
    assert to_rgb(la)[0].tolist() == [[100] * 3, [255] * 3]  # on white
    assert to_rgb(la.convert("La"))[0].tolist() == [[100] * 3, [255] * 3]


def test_a_png_whose_pixel_data_stops_early_is_refused(tmp_path, capsys):
    (tmp_path / "short.png").write_bytes(short_png(8, 8, 3))
    assert Image.open(tmp_path / "short.png").size == (8, 8)  # a header that passes
    with pytest.raises(
        MocohdError,
        match="short.png: damaged or truncated image: its pixel data stops early "
        r"\(40 of 64 pixels never decoded\)",
    ):
        read_photo(tmp_path / "short.png", 8)
    save_canonical(tmp_path / "g.safetensors", trained_looking_generator())
    code, _, err = run(
        capsys,
        "invert",
        str(tmp_path / "short.png"),
        "--image",
        str(tmp_path / "g.safetensors"),
        "--loss",
        "pixel",
        "--steps",
        "2",
    )
    assert code == 1 and "stops early" in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "whole.png").write_bytes(short_png(8, 8, 8))  # the same, whole: read
    assert (read_photo(tmp_path / "whole.png", 8) == 200).all()
    marked = np.full((8, 8, 3), (0x5A, 0xA5, 0x3C), np.uint8)  # real pixels of the marker's value are fine
    (tmp_path / "marked.png").write_bytes(png_bytes(marked))
    assert read_photo(tmp_path / "marked.png", 8).tolist() == marked.tolist()
    grey = np.full((8, 8), 0x5A, np.uint8)
    (tmp_path / "grey.png").write_bytes(png_bytes(grey, "L"))
    assert (read_photo(tmp_path / "grey.png", 8) == 0x5A).all()


# ---------------------------------------------------------------- the command


@pytest.fixture
def photo_and_generator(tmp_path):
    G = trained_looking_generator()
    save_canonical(tmp_path / "g.safetensors", G)
    _, images = known_images(G, n=1)
    (tmp_path / "me.png").write_bytes(png_bytes(to_uint8(images)[0]))
    return tmp_path / "me.png", str(tmp_path / "g.safetensors")


def test_cli_stores_the_latent_and_refuses_to_replace_it(photo_and_generator, capsys, isolated_store):
    photo, g = photo_and_generator
    code, out, err = run(capsys, "invert", str(photo), "--image", g, "--loss", "pixel", "--steps", "60")
    assert code == 0, err
    assert f"{photo}: distance" in out and "stored latent me" in out
    assert f"next: mocohd render me.mp4 --image {g} --start me" in out
    assert "inverting: 60/60 steps" in err  # plain progress lines: stderr is no terminal here
    assert store_files(isolated_store) == ["latent/me.safetensors"]
    latent = load_latent("me")
    assert latent.photos[0]["file"] == "me.png" and latent.info["crop"] == "center" and latent.distance[0] < 0.1
    code, _, err = run(capsys, "invert", str(photo), "--image", g, "--loss", "pixel", "--steps", "2")
    assert code == 1 and "already in the store" in err and "--force" in err
    code, out, err = run(
        capsys, "invert", str(photo), "--image", g, "--loss", "pixel", "--steps", "2", "--force", "--space", "w+"
    )
    assert code == 0, err
    assert load_latent("me").space == "w+"
    code, _, err = run(capsys, "invert", str(photo), "--image", g, "--space", "z")
    assert code == 2 and "space" in err


def test_cli_perceptual_without_vgg16_says_what_to_do(photo_and_generator, capsys):
    photo, g = photo_and_generator
    code, out, err = run(capsys, "invert", str(photo), "--image", g, "--steps", "2")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "mocohd fetch vgg16" in err and "--loss pixel" in err


def test_cli_ctrl_c_keeps_the_best_latent(photo_and_generator, capsys, monkeypatch, isolated_store):
    photo, g = photo_and_generator
    real = invert_mod.invert

    def interrupted(*args, progress=None, **kw):  # Ctrl-C during step 5
        def on_step(step, steps, dist):
            progress(step, steps, dist)
            if step == 5:
                signal.raise_signal(signal.SIGINT)

        return real(*args, progress=on_step, **kw)

    monkeypatch.setattr(invert_mod, "invert", interrupted)
    code, out, err = run(
        capsys, "invert", str(photo), "--image", g, "--loss", "pixel", "--steps", "100", "--name", "early"
    )
    assert code == 130, err
    assert "interrupted: stopped at step 5/100; stored the best latent early" in err
    assert load_latent("early").info["stopped"] is True and load_latent("early").info["steps"] == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_stop_request_keeps_the_best_latent_like_the_first_ctrl_c(photo_and_generator, isolated_store):
    """``should_stop`` (the studio's Stop button) ends the search after its step and stores the
    best latent so far; no signal stopped it, so ``stopped_by`` stays None."""
    photo, g = photo_and_generator
    steps = []
    found = invert_mod.invert_and_store(
        [photo],
        image=g,
        name="asked",
        steps=100,
        loss="pixel",
        progress=lambda step, total, dist: steps.append(step),
        should_stop=lambda: len(steps) >= 4,
    )
    assert found.stopped_by is None and found.name == "asked" and steps == [1, 2, 3, 4]
    assert load_latent("asked").info["stopped"] is True and load_latent("asked").info["steps"] == 4


def test_invert_module_is_the_projector():
    assert (invert_mod.W_AVG_SAMPLES, invert_mod.INITIAL_LR, invert_mod.INITIAL_NOISE_FACTOR) == (10_000, 0.1, 0.05)
    assert (invert_mod.LR_RAMPDOWN_LENGTH, invert_mod.LR_RAMPUP_LENGTH, invert_mod.NOISE_RAMP_LENGTH) == (
        0.25,
        0.05,
        0.75,
    )
    assert invert_mod.REGULARIZE_NOISE_WEIGHT == 1e5 and invert_mod.BETAS == (0.9, 0.999)


def test_cli_refuses_an_empty_name_and_keeps_a_result_whose_name_was_taken_meanwhile(
    photo_and_generator, capsys, monkeypatch, isolated_store
):
    """`--name ''` is no name (exit 2, not the photo's name); when another invert
    stores the same name while this one runs, this result is stored under a free name, and said."""
    photo, g = photo_and_generator
    code, _, err = run(capsys, "invert", str(photo), "--image", g, "--loss", "pixel", "--steps", "2", "--name", "")
    assert code == 2 and "--name" in err and len(err.strip().splitlines()) == 1
    assert store_files(isolated_store) == []
    real = invert_mod.invert

    def racing(*args, **kw):  # another invert stores 'me' while this one runs
        latent = real(*args, **kw)
        save_latent(latent, "me")
        return latent

    monkeypatch.setattr(invert_mod, "invert", racing)
    code, out, err = run(capsys, "invert", str(photo), "--image", g, "--loss", "pixel", "--steps", "2")
    assert code == 0, err
    assert "note: a latent named 'me' was stored while this one was found" in err and "stored as 'me-2'" in err
    assert "stored latent me-2" in out and "--start me-2" in out
    assert store_files(isolated_store) == ["latent/me-2.safetensors", "latent/me.safetensors"]
    assert "crop" in load_latent("me-2").info and "crop" not in load_latent("me").info  # each its own


def test_vgg16_import_says_what_it_imported(tmp_path, capsys):
    """VGG16 has no feature size: the line shows its widths, not '?-d features'."""
    torch.save(vgg_state_dict(), tmp_path / "vgg16-397923af.pth")
    code, out, err = run(capsys, "import", str(tmp_path / "vgg16-397923af.pth"), "--name", "vgg16")
    assert code == 0, err
    assert "(vgg16, widths 4, 8, 8, 16, 16)" in out and "?" not in out
