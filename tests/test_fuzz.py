"""Fuzzing the readers with damaged and lying model files, and datasets of odd frames.

Valid canonical (.safetensors), rosinality (.pt) and NVIDIA (.pkl) generators
and a canonical motion model are truncated, have bytes flipped, and are
rewritten with metadata, configs, shapes and values that lie. Every load
either gives a model whose forward pass is finite or fails with a one-line
MocohdError naming the file: never another exception, and never a module
larger than the file justifies (a guard around the builders fails the test
before such a module would be allocated). Seeded: the same cases every run.

A dataset of frame folders in every Pillow mode and bit depth the dataset
formats hold, lying, truncated and damaged frames, and frames of two sizes:
``prepare`` never raises, every video it keeps is [T, S, S, 3] uint8 of the
values drawn, and each bad video is counted unreadable.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import random
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from mocohd_cli import MocohdError, generators, store
from mocohd_cli.data import prepare
from mocohd_cli.formats import canonical, read_any, rosinality
from mocohd_cli.loaders import describe, image_generators, import_model, load_image_generator, motion_models as motion
from mocohd_cli.loaders.motion_models import load_motion, save_motion
from mocohd_cli.motion import MotionConfig
from mocohd_cli.motion.generator import MotionGenerator

from .conftest import randomized_generator, run, save_canonical, tiny_config
from .support import nvidia_pickle

LIMIT = 10  # a built module may take at most LIMIT x the file's size
HUGE = 10**9


# ---------------------------------------------------------------- the builders' guard


def _stylegan2_bytes(c) -> int | None:
    """A lower bound of the bytes a StyleGAN2 config allocates (mapping + conv weights);
    None when the config is not even well-typed (the builder refuses those)."""
    try:
        r, z, w, layers = c["resolution"], c["z_dim"], c["w_dim"], c["mapping_layers"]
        base, cmax = c["channel_base"], c["channel_max"]
        if not all(isinstance(v, int) and v > 0 for v in (r, z, w, layers, base, cmax)):
            return None
        n = z * w + (layers - 1) * w * w
        img = c.get("img_channels", 3)
        res, cin = 4, 0
        while res <= r:
            cout = min(base // res, cmax)
            n += 9 * (cin * cout + cout * cout) + (cout * img if isinstance(img, int) else 0)
            cin, res = cout, res * 2
        return 4 * n
    except (KeyError, TypeError):
        return None


def _motion_bytes(cfg: MotionConfig) -> int:
    h, w, e, k = cfg.h_dim, cfg.w_dim, cfg.noise_dim, cfg.n_pca
    return 4 * (4 * h * (w + e + 2 * h) + h * k + 2 * h * e + e * e + k * w)


@pytest.fixture
def guard(monkeypatch):
    """Fail the test (before allocating) if a module bigger than LIMIT x the file is built."""
    size = {"bytes": 0}
    real_build = generators.build_generator

    def build(family, config):
        need = _stylegan2_bytes(config) if family == "stylegan2" else None
        assert need is None or need <= LIMIT * size["bytes"], (
            f"would build {need:,} bytes from a {size['bytes']:,}-byte file"
        )
        return real_build(family, config)

    real_motion = motion.MotionGenerator

    class GuardedMotion(real_motion):
        def __init__(self, cfg, *args, **kw):
            need = _motion_bytes(cfg)
            assert need <= LIMIT * size["bytes"], f"would build {need:,} bytes from a {size['bytes']:,}-byte file"
            super().__init__(cfg, *args, **kw)

    monkeypatch.setattr(generators, "build_generator", build)
    monkeypatch.setattr(image_generators, "build_generator", build)
    monkeypatch.setattr(motion, "MotionGenerator", GuardedMotion)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny forwards: thread start-up (and a busy machine) would dominate
    yield size
    torch.set_num_threads(threads)


def _attempt(path, kind: str, guard) -> str:
    """Load ``path`` every way a user can; 'loaded' or 'refused' (a proper MocohdError)."""
    guard["bytes"] = path.stat().st_size
    try:
        if kind == "image":
            G = load_image_generator(path)
            with torch.no_grad():
                z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
                img = G.synthesis(G.mapping(z), noise_mode="const")
            assert torch.isfinite(img).all(), f"{path.name}: loaded, but renders non-finite pixels"
        else:
            M = load_motion(path)
            with torch.no_grad():
                ws = M(torch.zeros(2, M.cfg.w_dim), 4, generator=torch.Generator().manual_seed(0))
            assert torch.isfinite(ws).all(), f"{path.name}: loaded, but its trajectory is not finite"
        info = describe(path)
        assert len(info.weights_sha256) == 64
        import_model(path, "fuzzed", overwrite=True)
    except MocohdError as e:
        msg = str(e)
        assert "\n" not in msg.strip(), f"{path.name}: a multi-line error: {msg!r}"
        assert path.name in msg, f"{path.name}: the error does not name the file: {msg!r}"
        return "refused"
    return "loaded"


def _run_cases(cases, kind, guard, tmp_path) -> dict:
    """Write and attempt each (label, bytes, expect) case; collect every failure, then assert."""
    failures, outcomes = [], {}
    for i, (label, data, expect) in enumerate(cases):
        suffix = {"image-st": ".safetensors", "motion": ".safetensors"}.get(kind, "")
        path = tmp_path / f"case{i:03d}{suffix}"  # the readers sniff content, not names
        path.write_bytes(data)
        try:
            got = _attempt(path, "motion" if kind == "motion" else "image", guard)
        except Exception as e:  # noqa: BLE001 - the point: anything but a MocohdError is a failure
            failures.append(f"{label}: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}")
            continue
        outcomes[label] = got
        if expect is not None and got != expect:
            failures.append(f"{label}: {got}, expected {expect}")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:25])
    return outcomes


def _damage(data: bytes, rng: random.Random, n_trunc: int, n_flip: int, protect: int = 0) -> list:
    """Truncations at random points and 1-4 random byte changes (past the first ``protect`` bytes)."""
    cases = [(f"truncated at {k}", data[:k], None) for k in sorted(rng.sample(range(1, len(data)), n_trunc))]
    for j in range(n_flip):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(protect, len(b))] = rng.randrange(256)
        cases.append((f"flip {j}", bytes(b), None))
    return cases


# ---------------------------------------------------------------- canonical .safetensors


def _split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header: dict, body: bytes) -> bytes:
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body


def _with_config(data: bytes, **changes) -> bytes:
    header, body = _split(data)
    cfg = json.loads(header["__metadata__"]["mocohd.config"])
    cfg.update(changes)
    header["__metadata__"]["mocohd.config"] = json.dumps(cfg)
    return _join(header, body)


def _with_meta(data: bytes, **changes) -> bytes:
    header, body = _split(data)
    for k, v in changes.items():
        if v is None:
            header["__metadata__"].pop(f"mocohd.{k}", None)
        else:
            header["__metadata__"][f"mocohd.{k}"] = v
    return _join(header, body)


def _with_tensor(data: bytes, name: str, **changes) -> bytes:
    header, body = _split(data)
    header[name].update(changes)
    return _join(header, body)


@pytest.fixture(scope="module")
def generator():
    return randomized_generator(tiny_config(8))


def _canonical_bytes(tmp_path, G, name="g.safetensors", sd=None, config=None) -> bytes:
    path = tmp_path / name
    save_canonical(path, G, sd=sd, config=config)
    return path.read_bytes()


def test_fuzz_canonical_image(tmp_path, guard, generator):
    rng = random.Random(10)
    good = _canonical_bytes(tmp_path, generator)
    header, _ = _split(good)
    nan_sd = dict(generator.state_dict())
    nan_sd["synthesis.b8.conv1.weight"] = (
        nan_sd["synthesis.b8.conv1.weight"].clone().index_put_((torch.tensor([0]),), torch.tensor(float("nan")))
    )
    inf_sd = dict(generator.state_dict())
    inf_sd["mapping.w_avg"] = torch.full_like(inf_sd["mapping.w_avg"], float("inf"))

    R, L = "refused", "loaded"
    cases = [("original", good, L)]
    cases += _damage(good, rng, n_trunc=20, n_flip=40, protect=8)
    # metadata that lies
    cases += [
        ("hash of zeros", _with_meta(good, weights_sha256="0" * 64), R),
        (
            "hash of another model",
            _with_meta(
                good, weights_sha256=canonical.weights_sha256(randomized_generator(tiny_config(8), seed=1).state_dict())
            ),
            R,
        ),
        ("no hash (older file)", _with_meta(good, weights_sha256=None), L),
        ("kind motion", _with_meta(good, kind="motion"), R),
        ("kind pca", _with_meta(good, kind="pca"), R),
        ("kind banana", _with_meta(good, kind="banana"), R),
        ("family biggan", _with_meta(good, family="biggan-deep"), R),
        ("family unknown", _with_meta(good, family="stylegan9"), R),
        ("format 99", _with_meta(good, format="99"), R),
        ("format x", _with_meta(good, format="x"), R),
        ("config a list", _with_meta(good, config="[1, 2]"), R),
        ("config not json", _with_meta(good, config="{w_dim: 32"), R),
        ("config nested 100000 deep", _with_meta(good, config="[" * 100000 + "]" * 100000), R),
        ("source a string", _with_meta(good, source='"x"'), R),
    ]
    for key, value in [
        ("w_dim", HUGE),
        ("z_dim", HUGE),
        ("mapping_layers", HUGE),
        ("channel_max", HUGE),
        ("channel_base", 10**12),
        ("resolution", 2**20),
        ("resolution", 16),
        ("w_dim", 64),
        ("w_dim", -1),
        ("w_dim", 0),
        ("w_dim", 32.5),
        ("w_dim", "32"),
        ("w_dim", None),
        ("w_dim", True),
        ("mapping_lr_mul", float("nan")),
        ("mapping_lr_mul", float("inf")),
        ("mapping_lr_mul", -0.01),
        ("conv_clamp", -1.0),
        ("conv_clamp", float("nan")),
        ("img_channels", HUGE),
        ("w_avg_beta", 7.0),
        ("extra_key", 1),
    ]:
        cases.append((f"config {key}={value!r}", _with_config(good, **{key: value}), R))
    # shapes and offsets that lie
    a, b = "mapping.fc0.weight", "mapping.fc1.weight"
    n = math.prod(header[a]["shape"])
    cases += [
        (f"{a} shape doubled", _with_tensor(good, a, shape=[2 * s for s in header[a]["shape"]]), R),
        (f"{a} shape reshaped", _with_tensor(good, a, shape=[n]), R),
        (f"{a} shape huge", _with_tensor(good, a, shape=[HUGE, HUGE]), R),
        (f"{a} offsets past the end", _with_tensor(good, a, data_offsets=[0, 10**12]), R),
        (f"{a} offsets of {b}", _with_tensor(good, a, data_offsets=header[b]["data_offsets"]), R),
        (f"{a} dtype F64", _with_tensor(good, a, dtype="F64"), R),
        (f"{a} dtype F16", _with_tensor(good, a, dtype="F16"), R),
        ("header length huge", struct.pack("<Q", 2**40) + good[8:], R),
    ]
    # values that lie (a consistent hash over non-finite weights), unusual dtypes
    as_dtype = {
        k: (v.to(torch.float8_e4m3fn) if k == "mapping.fc0.weight" else v) for k, v in generator.state_dict().items()
    }
    as_complex = {
        k: (v.to(torch.complex64) if k == "mapping.fc0.weight" else v) for k, v in generator.state_dict().items()
    }
    cases += [
        ("NaN weight", _canonical_bytes(tmp_path, generator, "nan.safetensors", sd=nan_sd), R),
        ("inf w_avg", _canonical_bytes(tmp_path, generator, "inf.safetensors", sd=inf_sd), R),
        ("float8 weight", _canonical_bytes(tmp_path, generator, "f8.safetensors", sd=as_dtype), L),
        ("complex weight", _canonical_bytes(tmp_path, generator, "c.safetensors", sd=as_complex), R),
    ]
    out = _run_cases(cases, "image-st", guard, tmp_path)
    assert out["original"] == "loaded"


def test_fuzz_canonical_motion(tmp_path, guard):
    rng = random.Random(11)
    torch.manual_seed(0)
    cfg = MotionConfig(w_dim=12, noise_dim=10, h_dim=8, n_pca=6)
    q, _ = torch.linalg.qr(torch.randn(12, 12))
    M = MotionGenerator(cfg, q.t(), torch.linspace(2, 0.5, 12))  # the module itself, not the guarded one
    save_motion(tmp_path / "m.safetensors", M)
    good = (tmp_path / "m.safetensors").read_bytes()
    M.b.data[0] = float("nan")
    save_motion(tmp_path / "nan.safetensors", M)
    R = "refused"
    cases = [("original", good, "loaded")] + _damage(good, rng, n_trunc=15, n_flip=30, protect=8)
    for key, value in [
        ("w_dim", HUGE),
        ("noise_dim", HUGE),
        ("h_dim", HUGE),
        ("n_pca", HUGE),
        ("noise_dim", 10**5),
        ("h_dim", 9),
        ("n_pca", 13),
        ("w_dim", 12.0),
        ("w_residual", float("nan")),
        ("w_residual", "x"),
    ]:
        cases.append((f"config {key}={value!r}", _with_config(good, **{key: value}), R))
    cases += [
        ("hash of zeros", _with_meta(good, weights_sha256="0" * 64), R),
        ("kind image", _with_meta(good, kind="image"), R),
        ("family other", _with_meta(good, family="other"), R),
        ("NaN b", (tmp_path / "nan.safetensors").read_bytes(), R),
    ]
    _run_cases(cases, "motion", guard, tmp_path)


# ---------------------------------------------------------------- rosinality .pt


def _pt_bytes(tmp_path, ckpt, name="g.pt") -> bytes:
    torch.save(ckpt, tmp_path / name)
    return (tmp_path / name).read_bytes()


def test_fuzz_rosinality(tmp_path, guard, generator):
    rng = random.Random(12)
    G = generator
    base = rosinality.to_rosinality_state_dict(G.cfg.to_dict(), G.state_dict())
    good = _pt_bytes(tmp_path, base)

    def lie(label, expect="refused", **g_ema):
        ckpt = {
            "g_ema": {**base["g_ema"], **{k.replace("__", "."): v for k, v in g_ema.items()}},
            "latent_avg": base["latent_avg"],
        }
        return label, _pt_bytes(tmp_path, ckpt, "lie.pt"), expect

    w = base["g_ema"]["style.1.weight"]
    cases = [("original", good, "loaded")] + _damage(good, rng, n_trunc=15, n_flip=30)
    cases += [
        # shapes whose data is not in the file: zero-stride views of one value
        lie("style.1 [1e9, 1e9] stride 0", style__1__weight=torch.zeros(1).expand(HUGE, HUGE)),
        lie("style.1 [1e5, 32] stride 0", style__1__weight=torch.zeros(1).expand(10**5, 32)),
        lie(
            "style.1 and style.2 [1e5, 1e5]",
            style__1__weight=torch.zeros(1).expand(10**5, 10**5),
            style__2__weight=torch.zeros(1).expand(10**5, 10**5),
        ),
        lie("conv1 weight stride 0", conv1__conv__weight=torch.zeros(1).expand(1, HUGE, 32, 3, 3)),
        lie("style.2 [32, 16] after style.1 [32, 32]", style__2__weight=w[:, :16].contiguous()),
        lie("style.1 a 0-d tensor", style__1__weight=torch.tensor(1.0)),
        lie("style.1 a string", style__1__weight="weights"),
        lie("input.input 0-d", input__input=torch.tensor(1.0)),
        lie("noise weight empty", conv1__noise__weight=torch.zeros(0)),
        lie("style.1 int64", "loaded", style__1__weight=w.long()),
        lie("style.1 float8", "loaded", style__1__weight=w.to(torch.float8_e4m3fn)),
        lie("style.1 complex", style__1__weight=w.to(torch.complex64)),
        lie("style.1 sparse", style__1__weight=w.to_sparse()),
        lie("style.1 on the meta device", style__1__weight=torch.empty(32, 32, device="meta")),
        lie("style.1 NaN", style__1__weight=w.clone().fill_(float("nan"))),
        lie("to_rgb1 bias inf", to_rgb1__bias=torch.full_like(base["g_ema"]["to_rgb1.bias"], float("inf"))),
        (
            "latent_avg NaN",
            _pt_bytes(tmp_path, {**base, "latent_avg": torch.full_like(base["latent_avg"], float("nan"))}, "l.pt"),
            "refused",
        ),
        (
            "latent_avg [1e9] stride 0",
            _pt_bytes(tmp_path, {**base, "latent_avg": torch.zeros(1).expand(HUGE)}, "l.pt"),
            "refused",
        ),
        (
            "a list of 2000 references",
            _pt_bytes(tmp_path, {**base, "junk": [base["g_ema"]["convs.0.conv.weight"]] * 2000}, "l.pt"),
            "refused",
        ),
    ]
    _run_cases(cases, "pt", guard, tmp_path)


# ---------------------------------------------------------------- NVIDIA .pkl


def _pkl_bytes(G, attrs=None, tensors=None) -> bytes:
    """An NVIDIA pickle of ``G``, with Generator attributes and tensors (dotted module path
    -> tensor) replaced."""
    with nvidia_pickle.nvidia_modules() as easydict:
        g = nvidia_pickle._persist(G, easydict, "", extra_state=attrs)
        for dotted, t in (tensors or {}).items():
            *mods, leaf = dotted.split(".")
            node = g
            for m in mods:
                node = node.meta["state"]["_modules"][m]
            group = "_buffers" if leaf in node.meta["state"]["_buffers"] else "_parameters"
            node.meta["state"][group][leaf] = t
        return pickle.dumps({"G": None, "D": None, "G_ema": g})


def test_fuzz_nvidia_pickle(tmp_path, guard, generator):
    rng = random.Random(13)
    G = generator
    good = _pkl_bytes(G)
    w = G.mapping.fc0.weight.detach()
    R = "refused"
    cases = [("original", good, "loaded")] + _damage(good, rng, n_trunc=20, n_flip=40)
    for key, value in [
        ("z_dim", HUGE),
        ("w_dim", HUGE),
        ("z_dim", 64),
        ("img_resolution", 2**20),
        ("img_resolution", 16),
        ("img_channels", HUGE),
        ("z_dim", "abc"),
        ("z_dim", None),
        ("c_dim", 10),
    ]:
        cases.append((f"attr {key}={value!r}", _pkl_bytes(G, attrs={key: value}), R))
    cases += [
        (
            "fc0 [1e9, 1e9] stride 0",
            _pkl_bytes(G, tensors={"mapping.fc0.weight": torch.zeros(1).expand(HUGE, HUGE)}),
            R,
        ),
        (
            "fc0 [32, 1e5] stride 0 float16",
            _pkl_bytes(G, tensors={"mapping.fc0.weight": torch.zeros(1, dtype=torch.float16).expand(32, 10**5)}),
            R,
        ),
        ("fc0 transposed shape", _pkl_bytes(G, tensors={"mapping.fc0.weight": w[:16].contiguous()}), R),
        ("fc0 NaN", _pkl_bytes(G, tensors={"mapping.fc0.weight": torch.full_like(w, float("nan"))}), R),
        ("w_avg inf", _pkl_bytes(G, tensors={"mapping.w_avg": torch.full_like(G.mapping.w_avg, float("-inf"))}), R),
        ("const a string", _pkl_bytes(G, tensors={"synthesis.b4.const": "const"}), R),
        ("fc0 float16", _pkl_bytes(G, tensors={"mapping.fc0.weight": w.half()}), "loaded"),
    ]
    _run_cases(cases, "pkl", guard, tmp_path)


def test_fuzz_memory_stays_bounded(tmp_path, guard, generator):
    """The lies above that would allocate (configs and shapes 1e9 wide) are refused before
    they do: peak memory hardly moves while reading a batch of them."""
    resource = pytest.importorskip("resource")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    good = _canonical_bytes(tmp_path, generator)
    base = rosinality.to_rosinality_state_dict(generator.cfg.to_dict(), generator.state_dict())
    files = {
        "w.safetensors": _with_config(good, w_dim=10**5),
        "m.safetensors": _with_config(good, mapping_layers=64, w_dim=10**4),  # 25 GB, within bounds
        "c.safetensors": _with_config(
            good, channel_max=2**16, channel_base=2**26
        ),  # within bounds: the shapes refuse it
        "s.pt": _pt_bytes(
            tmp_path, {"g_ema": {**base["g_ema"], "style.1.weight": torch.zeros(1).expand(10**5, 10**5)}}, "x.pt"
        ),
        "z.pkl": _pkl_bytes(generator, attrs={"z_dim": 10**5}),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MocohdError, match=name.replace(".", r"\.")):
            read_any(tmp_path / name)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 512, f"peak memory grew by {grown_mib:.0f} MiB reading lying files of a few kB"


# ---------------------------------------------------------------- datasets: frames of every mode, bad frames

SIDE = 12  # square frames, prepared at their own size: the values come through exact
LEVELS = (40, 120, 200)  # frame t of every video is drawn at level LEVELS[t]


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _solid(mode: str, value) -> Image.Image:
    return Image.new(mode, (SIDE, SIDE), value)


def _palette(level: int, transparent: bool = False) -> Image.Image:
    im = _solid("P", 0)
    im.putpalette([level, 255 - level, 50] + [0] * 765)
    if transparent:
        im.info["transparency"] = 0
    return im


def _png(depth: int, colour: int, row: bytes, rows: int = SIDE) -> bytes:
    """A SIDE x SIDE PNG written by hand (depths and colour types Pillow does not write), every
    row ``row``, its pixel data stopping after ``rows`` rows."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = b"".join(b"\x00" + row for _ in range(rows))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", SIDE, SIDE, depth, colour, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def _rgb_via_pillow(mode: str, value) -> tuple:
    """What Pillow's own conversion makes of one pixel (the colour spaces it converts: CMYK, LAB, YCbCr)."""
    return tuple(int(c) for c in np.asarray(Image.new(mode, (1, 1), value).convert("RGB"))[0, 0])


def _pillow_reads(path) -> bool:
    """Whether the installed Pillow decodes the image file at ``path`` whole."""
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except OSError:
        return False


def _good_frame_cases() -> list:
    """(name, extension, make(level) -> bytes, expect(level) -> RGB, tolerance)."""
    u16 = lambda level: np.full((SIDE, SIDE), 257 * level, np.uint16)  # noqa: E731
    over = lambda c, a: round(c * a / 255 + 255 * (255 - a) / 255)  # noqa: E731 - on white
    grey = lambda level: (level,) * 3  # noqa: E731
    colour = lambda level: (level, 255 - level, 50)  # noqa: E731
    return [
        (
            "png-1",
            ".png",
            lambda v: _encode(_solid("1", int(v >= 128)), "PNG"),
            lambda v: (255 if v >= 128 else 0,) * 3,
            0,
        ),
        ("png-L", ".png", lambda v: _encode(_solid("L", v), "PNG"), grey, 0),
        ("png-LA", ".png", lambda v: _encode(_solid("LA", (v, 255)), "PNG"), grey, 0),
        ("png-LA-clear", ".png", lambda v: _encode(_solid("LA", (v, 0)), "PNG"), lambda v: (255,) * 3, 0),
        ("png-LA-half", ".png", lambda v: _encode(_solid("LA", (v, 100)), "PNG"), lambda v: (over(v, 100),) * 3, 1),
        ("png-P", ".png", lambda v: _encode(_palette(v), "PNG"), colour, 0),
        ("png-P-clear", ".png", lambda v: _encode(_palette(v, True), "PNG", transparency=0), lambda v: (255,) * 3, 0),
        ("png-RGB", ".png", lambda v: _encode(_solid("RGB", colour(v)), "PNG"), colour, 0),
        (
            "png-RGBA-half",
            ".png",
            lambda v: _encode(_solid("RGBA", (*colour(v), 128)), "PNG"),
            lambda v: tuple(over(c, 128) for c in colour(v)),
            1,
        ),
        ("png-I16", ".png", lambda v: _encode(Image.fromarray(u16(v)), "PNG"), grey, 0),
        (
            "png-I16-dark",
            ".png",
            lambda v: _encode(Image.fromarray(u16(v) // 257), "PNG"),
            lambda v: (round(v / 257),) * 3,
            0,
        ),
        (
            "png-grey-4bit",
            ".png",
            lambda v: _png(4, 0, bytes([round(v / 17) * 17]) * (SIDE // 2)),
            lambda v: (round(v / 17) * 17,) * 3,
            0,
        ),
        ("png-LA16", ".png", lambda v: _png(16, 4, struct.pack(">HH", 257 * v, 65535) * SIDE), grey, 0),
        (
            "png-RGB16",
            ".png",
            lambda v: _png(16, 2, struct.pack(">HHH", *(257 * c for c in colour(v))) * SIDE),
            colour,
            0,
        ),
        (
            "png-RGBA16",
            ".png",
            lambda v: _png(16, 6, struct.pack(">HHHH", *(257 * c for c in colour(v)), 65535) * SIDE),
            colour,
            0,
        ),
        (
            "bmp-1",
            ".bmp",
            lambda v: _encode(_solid("1", int(v >= 128)), "BMP"),
            lambda v: (255 if v >= 128 else 0,) * 3,
            0,
        ),
        ("bmp-L", ".bmp", lambda v: _encode(_solid("L", v), "BMP"), grey, 0),
        ("bmp-P", ".bmp", lambda v: _encode(_palette(v), "BMP"), colour, 0),
        ("bmp-RGB", ".bmp", lambda v: _encode(_solid("RGB", colour(v)), "BMP"), colour, 0),
        ("jpg-L", ".jpg", lambda v: _encode(_solid("L", v), "JPEG"), grey, 3),
        ("jpg-RGB", ".jpeg", lambda v: _encode(_solid("RGB", colour(v)), "JPEG", quality=95), colour, 6),
        (
            "jpg-CMYK",
            ".jpg",
            lambda v: _encode(_solid("CMYK", (v, 0, 255 - v, 30)), "JPEG", quality=95),
            lambda v: _rgb_via_pillow("CMYK", (v, 0, 255 - v, 30)),
            6,
        ),
        ("webp-RGB", ".webp", lambda v: _encode(_solid("RGB", colour(v)), "WEBP", lossless=True), colour, 0),
        (
            "webp-RGBA-clear",
            ".webp",
            lambda v: _encode(_solid("RGBA", (*colour(v), 0)), "WEBP", lossless=True),
            lambda v: (255,) * 3,
            0,
        ),
        ("tif-I16", ".tif", lambda v: _encode(Image.fromarray(u16(v)), "TIFF"), grey, 0),
        (
            "tif-I16B",
            ".tiff",
            lambda v: _encode(Image.frombytes("I;16B", (SIDE, SIDE), u16(v).astype(">u2").tobytes()), "TIFF"),
            grey,
            0,
        ),
        (
            "tif-I32",
            ".tif",
            lambda v: _encode(Image.fromarray(np.full((SIDE, SIDE), v << 23, np.int32)), "TIFF"),
            lambda v: (round((v << 23) * 255 / (2**31 - 1)),) * 3,
            0,
        ),
        (
            "tif-F",
            ".tif",
            lambda v: _encode(Image.fromarray(np.full((SIDE, SIDE), v / 255, np.float32)), "TIFF"),
            grey,
            0,
        ),
        (
            "tif-CMYK",
            ".tif",
            lambda v: _encode(_solid("CMYK", (v, 0, 255 - v, 30)), "TIFF"),
            lambda v: _rgb_via_pillow("CMYK", (v, 0, 255 - v, 30)),
            0,
        ),
        (
            "tif-LAB",
            ".tif",
            lambda v: _encode(_solid("LAB", (v, 100, 160)), "TIFF"),
            lambda v: _rgb_via_pillow("LAB", (v, 100, 160)),
            0,
        ),
        (
            "tif-YCbCr",
            ".tif",
            lambda v: _encode(_solid("YCbCr", (v, 100, 160)), "TIFF"),
            lambda v: _rgb_via_pillow("YCbCr", (v, 100, 160)),
            0,
        ),
        ("tif-PA", ".tif", lambda v: _encode(_palette(v).convert("PA"), "TIFF"), colour, 0),
        # lying names: the content decides
        ("png-is-jpeg", ".png", lambda v: _encode(_solid("RGB", colour(v)), "JPEG", quality=95), colour, 6),
        ("jpg-is-png", ".jpg", lambda v: _encode(_solid("L", v), "PNG"), grey, 0),
        ("webp-is-bmp", ".webp", lambda v: _encode(_solid("RGB", colour(v)), "BMP"), colour, 0),
    ]


def _bad_frames(rng: random.Random) -> list:
    """(name, extension, bytes of the middle frame) of videos that must be counted unreadable: the
    frames before and after it are good."""
    good = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)), "PNG")
    jpeg = _encode(_solid("RGB", (10, 200, 30)), "JPEG")
    webp = _encode(_solid("RGB", (10, 200, 30)), "WEBP", lossless=True)
    idat_end = good.index(b"IEND") - 4
    cases = [
        ("garbage", ".png", b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(200))),
        ("empty", ".png", b""),
        ("text", ".jpg", b"not an image at all"),
        ("rows-stop-early", ".png", _png(8, 2, bytes(3 * SIDE), rows=5)),
        ("jpeg-cut", ".jpg", jpeg[: len(jpeg) // 2]),
        ("webp-cut", ".webp", webp[: len(webp) // 2]),
        ("zero-size", ".png", good[:16] + struct.pack(">II", 0, 0) + good[24:]),
        (
            "bomb",
            ".png",
            good[:16]
            + struct.pack(">II", 30000, 30000)
            + good[24:29]
            + struct.pack(">I", zlib.crc32(good[12:16] + struct.pack(">II", 30000, 30000) + good[24:29]))
            + good[33:],
        ),
        ("other-size", ".png", _encode(_solid("RGB", (1, 2, 3)).resize((SIDE + 4, SIDE)), "PNG")),
    ]
    cases += [(f"png-cut-at-{k}", ".png", good[:k]) for k in sorted(rng.sample(range(9, idat_end), 8))]
    return cases


def test_fuzz_dataset_frames(tmp_path, capsys):
    """Frame folders of every mode, bit depth and lie, and of bad frames (truncated, damaged,
    empty, a decompression bomb, another size): prepare keeps the good ones, 3 channels of the
    drawn values, counts the bad ones unreadable, and flipped bytes never crash it."""
    rng = random.Random(14)
    root = tmp_path / "data"
    good, unread = [], []
    for case in _good_frame_cases():
        name, ext, make, _, _ = case
        (root / name).mkdir(parents=True)
        for t, level in enumerate(LEVELS):
            (root / name / f"f{t}{ext}").write_bytes(make(level))
        # a file this Pillow writes but cannot read back (its YCbCr TIFFs before Pillow 13) is, to
        # prepare, a damaged frame: it must be counted unreadable, not kept
        (good if _pillow_reads(root / name / f"f0{ext}") else unread).append(case)
    assert [case[0] for case in unread] in ([], ["tif-YCbCr"]), "the only case a supported Pillow cannot read back"
    bad = _bad_frames(rng) + [(name, ext, None) for name, ext, *_ in unread]
    middle = _encode(_solid("RGB", (9, 9, 9)), "PNG")
    for name, ext, data in bad:
        if data is None:  # a good case that this Pillow cannot read: its folder is there already
            continue
        (root / name).mkdir(parents=True)
        (root / name / "f0.png").write_bytes(middle)
        (root / name / f"f1{ext}").write_bytes(data)
        (root / name / "f2.png").write_bytes(middle)
    flips = []  # flipped bytes: kept or counted unreadable, never a crash
    for j in range(12):
        b = bytearray(_encode(_solid("RGB", (5 * j, 60, 90)), "PNG"))
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(8, len(b))] = rng.randrange(256)
        (root / f"flip-{j}").mkdir()
        (root / f"flip-{j}" / "f0.png").write_bytes(bytes(b))
        flips.append(f"flip-{j}")

    info = prepare(root, frame_size=SIDE, min_frames=1)
    index = json.loads((info.cache / "index.json").read_text())
    kept = {v["source"]: v for v in index["videos"]}
    unreadable = {p.name for p in root.iterdir()} - set(kept)  # each has frames: not kept is unreadable
    failures = []
    for name, _, _, expect, tol in good:
        if name not in kept:
            failures.append(f"{name}: not kept")
            continue
        frames = load_file(str(info.cache / kept[name]["file"]))["frames"]
        if frames.dtype != torch.uint8 or tuple(frames.shape) != (3, SIDE, SIDE, 3):
            failures.append(f"{name}: {frames.dtype} {list(frames.shape)}")
            continue
        for t, level in enumerate(LEVELS):
            want = torch.tensor(expect(level)).expand(SIDE, SIDE, 3)
            err = int((frames[t].int() - want).abs().max())
            if err > tol:
                failures.append(f"{name} level {level}: {frames[t, 0, 0].tolist()}, expected {list(expect(level))}")
    for name, _, _ in bad:
        if name not in unreadable:
            failures.append(f"{name}: not counted unreadable")
    for name in flips:
        if name in kept:
            frames = load_file(str(info.cache / kept[name]["file"]))["frames"]
            if tuple(frames.shape) != (1, SIDE, SIDE, 3):
                failures.append(f"{name}: {list(frames.shape)}")
        elif name not in unreadable:
            failures.append(f"{name}: neither kept nor unreadable")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
    assert info.skipped["unreadable"] == len(unreadable) >= len(bad)
    assert info.videos + info.skipped["unreadable"] == len(good) + len(bad) + len(flips)
    code, out, err = run(capsys, "prepare", "--data", str(root), "--frame-size", str(SIDE), "--frames", "1")
    assert code == 0 and err.strip() == "" and "reused the clip cache" in out and f"{len(unreadable)} unreadable" in out


# ---------------------------------------------------------------- latent and motion metadata


def _rewrite_meta(data: bytes, key: str, value) -> bytes:
    """``data`` with its ``mocohd.KEY`` entry merged with ``value`` (a dict) or replaced by it (a string)."""
    header, body = _split(data)
    meta = header["__metadata__"]
    if isinstance(value, dict):
        value = json.dumps({**json.loads(meta.get(f"mocohd.{key}", "{}")), **value})
    meta[f"mocohd.{key}"] = value
    return _join(header, body)


def _files_outside(root, *skip) -> dict:
    """Every file under ``root`` but those under ``skip``: path -> bytes."""
    return {
        p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not any(p.is_relative_to(s) for s in skip)
    }


RAW_LIES = ["{not json", "[1, 2]", '"a string"', "null", "[" * 100000 + "]" * 100000, "x" * 100000]


def test_fuzz_latent_and_motion_metadata(tmp_path, guard, capsys, isolated_store):
    """Crafted ``mocohd.source`` / ``mocohd.config`` / ``mocohd.image`` values in latent and
    motion files (absolute paths, '..', huge sizes, wrong types, non-JSON), read by every command that
    reads them (info, import, list, render --motion / --start, eval's run of a motion model): each loads,
    or is refused in one line with exit 1; never a traceback or an unanticipated exception, never a
    write outside the store and the command's own output, never a huge allocation (the guard)."""
    from mocohd_cli.loaders.latents import Latent, save_latent
    from mocohd_cli.loaders.pca_bases import pca_for
    from mocohd_cli.metrics.evaluate import run_of

    from .conftest import run

    G0 = randomized_generator(tiny_config(8))
    gpath = tmp_path / "g.safetensors"
    save_canonical(gpath, G0)
    guard["bytes"] = gpath.stat().st_size
    G = load_image_generator(gpath)
    basis, _, _ = pca_for(str(gpath), G=G, samples=2000, batch=1000)  # cached: no re-expression fits one
    ident = {"image_name": G.identity["name"], "image_sha256": G.identity["weights_sha256"]}
    torch.manual_seed(0)
    M = MotionGenerator(
        MotionConfig(w_dim=32, noise_dim=10, h_dim=8, n_pca=6, w_residual=1.0),
        basis.components,
        basis.stdev,
        basis.mean,
    )
    save_motion(tmp_path / "m.safetensors", M, image=ident, source={"format": "mocohd-train", "run": "m", "step": 1})
    motion_good = (tmp_path / "m.safetensors").read_bytes()
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1)))[:, None].repeat(
            1, G.num_ws, 1
        )
    save_latent(
        Latent(
            ws, None, "w", dict(ident), [{"file": "me.png", "sha256": "ab" * 32}], [0.1], {"loss": "pixel", "steps": 10}
        ),
        tmp_path / "l.safetensors",
    )
    latent_good = (tmp_path / "l.safetensors").read_bytes()
    victim = tmp_path / "victim"  # a metrics.jsonl outside the store that a crafted run could point at
    victim.mkdir()
    (victim / "metrics.jsonl").write_text("mine\n")
    store.kind_dir("runs", create=True)

    paths = [str(victim), "../../victim", "..", "../runs/../../victim", "a/b", "C:\\\\x", "", "x" * 5000]
    wrong = [5, 1e308, True, None, ["victim"], {"a": 1}]
    run_lies = [{"run": v} for v in paths + wrong] + [{"format": v, "run": "m"} for v in (5, ["mocohd-train"])]
    source_lies = [
        {"file": paths[0], "data": paths[1]},
        {"step": "x", "data": 5},
        {"classes": "abc", "truncation": "x"},
        {"classes": [None], "truncation": 1e308},
    ]
    image_lies = [
        {"image_name": paths[0], "image_sha256": "0" * 64},
        {"image_name": 5, "image_sha256": ["x"]},
        {"image_name": "../../x"},
    ]
    motion_config_lies = (
        [{"oscillators": v} for v in (10**9, -1, 7, "2")]
        + [{"osc_max_period": v} for v in (1e308, "x")]
        + [{"n_pca": v} for v in (10**9, "6")]
    )
    latent_config_lies = [
        {"photos": v}
        for v in ([{"file": "/etc/passwd", "sha256": 5}], ["x"], "x", [None], [{"file": ["a"], "sha256": {"b": 1}}])
    ]
    latent_config_lies += [{"distance": v} for v in (["a"], [1e308], [None], [[1]])]
    latent_config_lies += [{k: v} for k in ("count", "w_dim", "resolution") for v in (10**9, "4", None)]
    latent_config_lies += [{"space": "z"}, {"noise": "yes"}]
    latent_config_lies += [
        {k: v for k in ("loss", "steps", "truncation", "crop", "best_step", "stopped", "c_dim")}
        for v in ({"a": 1}, "x", 10**9, ["../x"])
    ]
    cases = [("motion", "original", motion_good), ("latent", "original", latent_good)]
    cases += [("motion", f"source {v!r}"[:80], _rewrite_meta(motion_good, "source", v)) for v in run_lies]
    for kind, good, config_lies in (
        ("motion", motion_good, motion_config_lies),
        ("latent", latent_good, latent_config_lies),
    ):
        cases += [(kind, f"source {v!r}"[:80], _rewrite_meta(good, "source", v)) for v in source_lies + RAW_LIES]
        cases += [(kind, f"config {v!r}"[:80], _rewrite_meta(good, "config", v)) for v in config_lies + RAW_LIES]
        cases += [(kind, f"image {v!r}"[:80], _rewrite_meta(good, "image", v)) for v in image_lies + RAW_LIES[:2]]

    before = _files_outside(tmp_path, isolated_store, tmp_path / "out", tmp_path / "cases")
    (tmp_path / "cases").mkdir()
    failures, outcomes = [], {"loaded": 0, "refused": 0}

    def attempt(label, *args):
        try:
            code, _, err = run(capsys, *args)
        except Exception as e:  # noqa: BLE001 - anything escaping the command line is a failure
            failures.append(f"{label}: {args[0]}: {type(e).__name__}: {e}"[:300])
            return None
        lines = err.strip().splitlines()
        if code not in (0, 1) or (code == 1 and (len(lines) != 1 or "--debug" in err or "Traceback" in err)):
            failures.append(f"{label}: {args[0]}: exit {code}: {err.strip()[:240]!r}")
        return code

    for i, (kind, label, data) in enumerate(cases):
        path = tmp_path / "cases" / f"{kind}{i:03d}.safetensors"
        path.write_bytes(data)
        guard["bytes"] = path.stat().st_size + gpath.stat().st_size  # the files a command reads
        label = f"{kind} {label}"
        attempt(label, "info", str(path))
        attempt(label, "import", str(path), "--name", f"fuzzed{i:03d}")  # `list` reads them all below
        what = (
            ["--motion", str(path)]
            if kind == "motion"
            else ["--motion", str(tmp_path / "m.safetensors"), "--start", str(path)]
        )
        code = attempt(
            label,
            "render",
            str(tmp_path / "out" / f"{i:03d}"),
            *what,
            "--image",
            str(gpath),
            "-n",
            "2",
            "--device",
            "cpu",
        )  # a new folder of PNG frames
        outcomes["loaded" if code == 0 else "refused"] += 1
        if kind == "motion":  # what `mocohd eval --motion FILE` appends to
            try:
                if run_of(str(path)) is not None:
                    failures.append(f"{label}: eval would append to {run_of(str(path))}")
            except Exception as e:  # noqa: BLE001 - any exception is a failure, recorded
                failures.append(f"{label}: run_of: {type(e).__name__}: {e}"[:300])
    attempt("the store of them all", "list")
    assert not failures, f"{len(failures)} failures in {len(cases)} cases:\n" + "\n".join(failures[:30])
    assert outcomes["loaded"] >= 10 and outcomes["refused"] >= 10, outcomes  # both kinds of case are here
    after = _files_outside(tmp_path, isolated_store, tmp_path / "out", tmp_path / "cases")
    assert after == before  # the victim's metrics.jsonl, and everything else, as it was


def test_fuzz_the_classes_a_biggan_motion_records(tmp_path, capsys):
    """`mocohd render` takes a BigGAN motion model's recorded classes (metadata, outside the weights hash)
    as its default --class: lies are refused in one line, as a bad --class would be."""
    from .conftest import run
    from .support.biggan_reference import TINY, make_reference

    (tmp_path / "port").mkdir()
    torch.save(make_reference().state_dict(), tmp_path / "port" / "pytorch_model.bin")
    (tmp_path / "port" / "config.json").write_text(json.dumps(TINY))
    assert run(capsys, "import", str(tmp_path / "port" / "pytorch_model.bin"), "--name", "big")[0] == 0
    G = load_image_generator("big")
    ident = {"image_name": "big", "image_sha256": G.identity["weights_sha256"]}
    torch.manual_seed(0)
    M = MotionGenerator(
        MotionConfig(w_dim=G.w_dim, noise_dim=8, h_dim=8, n_pca=4, w_residual=1.0),
        torch.eye(G.w_dim),
        torch.ones(G.w_dim),
    )
    for i, (classes, ok) in enumerate(
        (
            (["207", 3], True),
            ("abc", False),
            (10**9, False),
            ([-1], False),
            ([None], False),
            ([10**30], False),
            ([{"a": 1}], False),
        )
    ):
        save_motion(tmp_path / "m.safetensors", M, image=ident, source={"format": "mocohd-train", "classes": classes})
        code, out, err = run(
            capsys,
            "render",
            str(tmp_path / f"v{i}"),
            "--motion",
            str(tmp_path / "m.safetensors"),
            "--image",
            "big",
            "-n",
            "2",
            "--device",
            "cpu",
        )
        if ok:
            assert code == 0 and "class 207 golden retriever" in err, err  # one video: the first class
        else:
            assert code == 1 and "damaged metadata: the classes it records" in err, (classes, err)
            assert len(err.strip().splitlines()) == 1 and not (tmp_path / f"v{i}").exists()
