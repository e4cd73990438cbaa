"""The FVD detector (``detectors.i3d``) and how its weights are read (``formats.torchscript``,
``formats.i3d``).

The real ``i3d_torchscript.pt`` cannot be downloaded here, so a reference
Inception-I3D written in the tests (``i3d_reference``, real batch norm, module
names unlike ours) is scripted or traced and saved; our reader converts the
archive, and our I3D must then give the scripted module's outputs. The reader
never runs the archive: ``torch.jit.load`` is made to fail throughout.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import warnings
import zipfile
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mocohd_cli.detectors import I3D, I3DConfig
from mocohd_cli.detectors.i3d import conv_same, max_pool_same, min_frames, same_pad
from mocohd_cli.errors import MocohdError
from mocohd_cli.formats import i3d as i3d_format, torchscript

from .support.i3d_reference import make_reference

SMALL = 1 / 8
ATOL = 1e-4

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def no_jit_load(monkeypatch):
    """Reading an archive must never load it as TorchScript (nor torch.load it)."""

    def refuse(*args, **kwargs):
        raise AssertionError("torch.jit.load / torch.load called on an archive")

    monkeypatch.setattr(torch.jit, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch._C, "import_ir_module", refuse)
    monkeypatch.setattr(torch._C, "import_ir_module_from_buffer", refuse)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """(scripted reference at 1/8 width, path of its saved archive)."""
    ref = torch.jit.script(make_reference(SMALL, seed=0))
    path = tmp_path_factory.mktemp("i3d") / "i3d_small.pt"
    ref.save(str(path))
    return ref, path


def ours_from(path) -> tuple[I3D, dict]:
    config, tensors, notes = i3d_format.convert(torchscript.read_archive(path))
    model = I3D(I3DConfig.from_dict(config)).eval()
    model.load_state_dict(tensors)
    return model, notes


def videos(*shape, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def compare(ref, ours: I3D, v: torch.Tensor) -> float:
    with torch.no_grad():
        want = ref(v.float(), rescale=True, resize=True, return_features=True)
        got = ours(v.float() / 255 * 2 - 1)
    assert got.shape == want.shape == (v.shape[0], ours.feature_dim)
    assert want.abs().max() > 1  # logits, not something degenerate
    return float((got - want).abs().max())


# ---------------------------------------------------------------- the network and its config


def test_config_defaults_are_the_published_model_and_round_trip():
    c = I3DConfig()
    d = c.to_dict()
    assert d["conv3d_1a_7x7"] == 64 and d["conv3d_2c_3x3"] == 192 and d["mixed_4b"] == [192, 96, 208, 16, 48, 64]
    assert d["mixed_5c"] == [384, 192, 384, 48, 128, 128] and d["num_classes"] == 400 and d["size"] == 224
    assert I3DConfig.from_dict(json.loads(json.dumps(d))) == c
    assert c.convs()["Logits"] == (1024, 400, 1)  # Mixed_5c: 384 + 384 + 128 + 128
    assert c.convs()["Mixed_4b.b0"][0] == 480  # Mixed_3c: 128 + 192 + 96 + 64


@pytest.mark.parametrize(
    "bad, error, words",
    [
        ({"mixed_3b": [64, 96, 128, 16, 32]}, TypeError, "list of 6 widths"),
        ({"mixed_3b": [64, 96, 128, 16, 32, 0]}, ValueError, "mixed_3b[b3] must be in 1.."),
        ({"conv3d_1a_7x7": 64.0}, TypeError, "whole number"),
        ({"num_classes": True}, TypeError, "whole number"),
        ({"size": 160}, ValueError, "size must leave a 7x7 map"),
        ({"widths": 3}, ValueError, "unknown I3DConfig keys"),
    ],
)
def test_config_refuses_what_cannot_be_an_i3d(bad, error, words):
    with pytest.raises(error, match=None) as e:
        I3DConfig.from_dict({**I3DConfig().to_dict(), **bad})
    assert words in str(e.value)
    with pytest.raises(ValueError, match="must be a JSON object"):  # UsageError: also a ValueError
        I3DConfig.from_dict([1, 2])


@pytest.mark.parametrize("config", [I3DConfig(), I3DConfig.scaled(SMALL), I3DConfig.scaled(0.3, num_classes=7)])
def test_state_shapes_are_the_modules(config):
    shapes = {k: tuple(v.shape) for k, v in I3D(config).state_dict().items()}
    assert shapes == config.state_shapes()
    assert list(shapes) == list(config.state_shapes())  # forward order too


def test_tf_same_padding_helpers_match_explicit_padding():
    assert same_pad(224, 7, 2) == (2, 3) and same_pad(112, 3, 2) == (0, 1) and same_pad(9, 7, 2) == (3, 3)
    assert same_pad(14, 2, 2) == (0, 0) and same_pad(1, 3, 2) == (1, 1)
    g = torch.Generator().manual_seed(0)
    for kernel, stride in [
        ((1, 3, 3), (1, 2, 2)),
        ((3, 3, 3), (2, 2, 2)),
        ((2, 2, 2), (2, 2, 2)),
        ((3, 3, 3), (1, 1, 1)),
    ]:
        for n in range(1, 12):
            x = torch.randn(1, 2, n, n + 1, max(n - 1, 1), generator=g)
            pads = [same_pad(d, k, s) for d, k, s in zip(x.shape[2:], kernel, stride, strict=True)]
            flat = [p for ab in reversed(pads) for p in ab]
            want = F.max_pool3d(F.pad(x, flat, value=float("-inf")), kernel, stride)
            assert torch.equal(max_pool_same(x, kernel, stride), want), (kernel, stride, n)
    w, b = torch.randn(3, 2, 7, 7, 7, generator=g), torch.randn(3, generator=g)
    for n in (9, 10, 16):
        x = torch.randn(1, 2, n, n, n, generator=g)
        pads = [same_pad(d, 7, 2) for d in x.shape[2:]]
        want = F.conv3d(F.pad(x, [p for ab in reversed(pads) for p in ab]), w, b, 2)
        assert torch.allclose(conv_same(x, w, b, 2), want, atol=1e-5)


def test_fewer_than_nine_frames_or_a_wrong_shape_is_one_clear_error():
    assert min_frames() == 9
    model = I3D(I3DConfig.scaled(SMALL)).eval()
    assert model.min_frames == 9 and model.feature_dim == 400
    with pytest.raises(ValueError, match=r"^I3D needs clips of at least 9 frames, got 8$"):
        model(torch.zeros(1, 3, 8, 64, 64))
    with pytest.raises(MocohdError, match=r"I3D takes videos \[B, 3, T, H, W\], got \[3, 16, 64, 64\]"):
        model(torch.zeros(3, 16, 64, 64))
    with pytest.raises(ValueError, match="float videos"):
        model(torch.zeros(1, 3, 9, 64, 64, dtype=torch.uint8))


# ---------------------------------------------------------------- conversion: outputs match the scripted reference


def test_scripted_reference_converts_and_matches(scripted):
    ref, path = scripted
    assert torchscript.is_torchscript(path)
    ours, notes = ours_from(path)
    assert ours.config == I3DConfig.scaled(SMALL)  # every width read from the shapes
    assert notes["bn_eps"] == 1e-3 and "BatchNorm3d" in notes["bn_eps_source"]
    assert notes["batch_norm"] == "folded (57 of 58 convolutions)"
    assert compare(ref, ours, videos(2, 3, 16, 64, 64)) < ATOL  # resized inside both
    assert compare(ref, ours, videos(1, 3, 9, 48, 80, seed=1)) < ATOL  # the fewest frames, not square
    assert compare(ref, ours, videos(1, 3, 11, 224, 224, seed=2)) < ATOL  # no resize needed
    with torch.no_grad():  # the softmax output is the reference's other mode
        probs = ref(videos(1, 3, 9, 32, 32).float(), return_features=False)
    assert torch.allclose(probs.sum(1), torch.ones(1))


def test_archive_exposes_the_module_tree(scripted):
    _, path = scripted
    a = torchscript.read_archive(path)
    names = [p for p, _ in a.named_tensors()]
    assert names[:6] == [
        "stem.0.conv.weight",
        "stem.0.norm.weight",
        "stem.0.norm.bias",
        "stem.0.norm.running_mean",
        "stem.0.norm.running_var",
        "stem.0.norm.num_batches_tracked",
    ]
    assert names[-2:] == ["head.weight", "head.bias"]
    assert sum(t.ndim == 5 for _, t in a.named_tensors()) == 58
    types = a.module_types()
    # a class scripted again in one process gets a mangled name (__torch__.x.___torch_mangle_7.C)
    unmangled = {k: re.sub(r"___torch_mangle_\d+\.", "", v) for k, v in types.items()}
    assert unmangled[""].endswith("i3d_reference.ReferenceI3D") and unmangled["stem.0.norm"].endswith("BatchNorm3d")
    assert types["body.0.path1"].endswith("Sequential")
    assert all(name.endswith(".py") for name in a.code) and a.version
    source = a.class_source(types["stem.0.norm"])
    assert source.startswith("class BatchNorm3d") and "batch_norm" in source
    assert [k for k in a.root.state if k in ("stem", "body", "head")] == ["stem", "body", "head"]  # pickle order
    assert a.root.state["training"] is False and isinstance(a.root.state["head"], torchscript.ScriptObject)


@pytest.mark.parametrize("norm, eps", [("stats", 1e-3), ("sonnet", 0.01), ("affine", 0.02)])
def test_batch_norm_variants_and_their_eps(tmp_path, norm, eps):
    """nn.BatchNorm3d without scale and offset; sonnet-like (moving_mean, moving_variance, beta,
    eps a data attribute); another eps in nn.BatchNorm3d's code."""
    ref = torch.jit.script(make_reference(SMALL, norm=norm, eps=eps, seed=3))
    ref.save(str(tmp_path / "ref.pt"))
    ours, notes = ours_from(tmp_path / "ref.pt")
    assert notes["bn_eps"] == eps
    assert ("attribute eps" in notes["bn_eps_source"]) == (norm == "sonnet")
    assert compare(ref, ours, videos(1, 3, 10, 40, 40, seed=4)) < ATOL


@pytest.mark.parametrize("head_first", [False, True])
def test_an_archive_with_batch_norm_folded_already(tmp_path, head_first):
    """Convolutions with biases only; also with the logits stored first (pytorch-i3d's order)."""
    ref = torch.jit.script(make_reference(SMALL, norm="none", seed=5, head_first=head_first))
    ref.save(str(tmp_path / "folded.pt"))
    ours, notes = ours_from(tmp_path / "folded.pt")
    assert notes["batch_norm"] == "none (the convolutions carry biases)" and "bn_eps" not in notes
    assert notes.get("logits_stored_first", False) == head_first
    assert compare(ref, ours, videos(1, 3, 9, 32, 32, seed=6)) < ATOL


def test_a_traced_archive_converts_like_the_scripted_one(tmp_path, scripted):
    _, path = scripted
    model = make_reference(SMALL, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's shape warnings
        traced = torch.jit.trace(model, torch.zeros(1, 3, 9, 32, 32), check_trace=False)
    traced.save(str(tmp_path / "traced.pt"))
    assert torchscript.is_torchscript(tmp_path / "traced.pt")
    a = torchscript.read_archive(tmp_path / "traced.pt")
    assert a.constants  # the trace keeps 255 and 2 of the rescale as constants
    config_t, tensors_t, notes_t = i3d_format.convert(a)
    config_s, tensors_s, notes_s = i3d_format.convert(torchscript.read_archive(path))
    assert config_t == config_s and list(tensors_t) == list(tensors_s)
    assert all(torch.equal(tensors_t[k], tensors_s[k]) for k in tensors_s)
    assert notes_t["bn_eps"] == 1e-3 and "BatchNorm3d" in notes_t["bn_eps_source"]  # from torch.batch_norm(...) there


def test_eps_defaults_to_sonnets_when_the_archive_does_not_say(tmp_path):
    ref = make_reference(SMALL, norm="sonnet", eps=1e-3, seed=7)
    torch.jit.script(ref).save(str(tmp_path / "ref.pt"))
    a = torchscript.read_archive(tmp_path / "ref.pt")
    for obj in a.objects().values():
        obj.state.pop("eps", None)
    for name in list(a.code):
        a.code[name] = a.code[name].replace("batch_norm", "norm_by_hand")
    _, tensors, notes = i3d_format.convert(a)
    assert notes["bn_eps"] == 1e-3 and "none in the archive" in notes["bn_eps_source"]


def test_full_width_archive_gives_the_published_config(tmp_path):
    ref = torch.jit.script(make_reference(1.0, seed=8))
    ref.save(str(tmp_path / "i3d_torchscript.pt"))
    ours, notes = ours_from(tmp_path / "i3d_torchscript.pt")
    assert ours.config == I3DConfig() and ours.feature_dim == 400
    v = videos(1, 3, 9, 224, 224, seed=9)
    with torch.no_grad():
        want = ref(v.float())
    assert compare(ref, ours, v) < 1e-5 * float(want.abs().max())  # logits of about 50-100 here


# ---------------------------------------------------------------- what is refused


def _copy_zip(src, dst, drop=(), replace=None):
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = replace.get(info.filename, zin.read(info))
            zout.writestr(info, data)


def _archive_zip(path, data_pkl: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/constants.pkl", pickle.dumps((), protocol=2))
        z.writestr("archive/code/__torch__.py", "class Net(Module):\n  pass\n")
        z.writestr("archive/version", "3\n")


def _string(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"), ("torch", "load")])
def test_hostile_data_pkl_is_refused_unexecuted(tmp_path, module, name):
    marker = tmp_path / "ran"
    # GLOBAL module.name, ("touch marker",) REDUCE: what a malicious archive would run
    call = b"c" + f"{module}\n{name}\n".encode() + b"(" + _string(f"open({str(marker)!r}, 'w')") + b"tR"
    # hidden in a module's attributes: __torch__.Net() with {'x': <the call>}
    body = b"\x80\x02c__torch__\nNet\n)\x81}(" + _string("x") + call + b"ub."
    path = tmp_path / "hostile.pt"
    _archive_zip(path, body)
    assert torchscript.is_torchscript(path)
    with pytest.raises(MocohdError) as e:
        torchscript.read_archive(path)
    msg = str(e.value)
    assert msg == (
        f"{path}: refused: data.pkl asks for {module}.{name}, which a TorchScript archive of weights never "
        "needs; nothing in it was executed"
    )
    assert "\n" not in msg and not marker.exists()


def test_a_persistent_id_that_is_not_a_storage_is_refused(tmp_path):
    body = b"\x80\x02" + _string("cuda_ipc") + b"Q."
    _archive_zip(tmp_path / "pid.pt", body)
    with pytest.raises(MocohdError, match="persistent id other than a tensor storage"):
        torchscript.read_archive(tmp_path / "pid.pt")


def test_damaged_archives_give_one_line(scripted, tmp_path):
    _, path = scripted
    raw = path.read_bytes()
    top = path.stem
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MocohdError, match=r"not a readable TorchScript archive \(a truncated or damaged zip\)"):
        torchscript.read_archive(tmp_path / "cut.pt")
    assert not torchscript.is_torchscript(tmp_path / "cut.pt")

    _copy_zip(path, tmp_path / "missing.pt", drop={f"{top}/data/3"})
    with pytest.raises(MocohdError, match=rf"storage record {top}/data/3 is missing"):
        torchscript.read_archive(tmp_path / "missing.pt")

    _copy_zip(path, tmp_path / "short.pt", replace={f"{top}/data/0": b"\0" * 8})
    with pytest.raises(MocohdError, match=rf"storage record {top}/data/0 holds 8 bytes but its tensors need"):
        torchscript.read_archive(tmp_path / "short.pt")

    with zipfile.ZipFile(path) as z:  # flip a byte inside a stored record: its CRC no longer matches
        info = z.getinfo(f"{top}/data/0")
        assert info.compress_type == zipfile.ZIP_STORED
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    at = info.header_offset + 30 + name_len + extra_len + 5
    (tmp_path / "crc.pt").write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])
    with pytest.raises(MocohdError, match=rf"storage record {top}/data/0 cannot be read .*Bad CRC-32"):
        torchscript.read_archive(tmp_path / "crc.pt")

    for case in ("cut", "missing", "short", "crc"):
        try:
            torchscript.read_archive(tmp_path / f"{case}.pt")
        except MocohdError as e:
            assert "\n" not in str(e) and str(e).startswith(str(tmp_path / case)), str(e)


def test_plain_files_are_not_torchscript(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pt")
    (tmp_path / "text.pt").write_text("hello")
    assert not torchscript.is_torchscript(tmp_path / "plain.pt")
    assert not torchscript.is_torchscript(tmp_path / "text.pt")
    assert not torchscript.is_torchscript(tmp_path / "absent.pt")
    with pytest.raises(MocohdError, match="no <folder>/data.pkl|not a TorchScript"):
        _copy_zip(tmp_path / "plain.pt", tmp_path / "nopkl.pt", drop={"plain/data.pkl"})
        torchscript.read_archive(tmp_path / "nopkl.pt")


def _scripted_archive(tmp_path, model: nn.Module):
    torch.jit.script(model).save(str(tmp_path / "m.pt"))
    return torchscript.read_archive(tmp_path / "m.pt")


def test_a_reordered_branch_is_named_in_one_line(tmp_path):
    model = make_reference(SMALL, seed=10)
    block = model.body[3]  # Mixed_4b (after Mixed_3b, Mixed_3c and MaxPool3d_4a)
    block.path1 = nn.Sequential(block.path1[1], block.path1[0])  # 3x3x3 stored before its 1x1x1
    with pytest.raises(MocohdError) as e:
        i3d_format.convert(_scripted_archive(tmp_path, model))
    assert str(e.value) == (
        f"{tmp_path / 'm.pt'}: cannot place tensor 'body.3.path1.0.conv.weight' [26, 12, 3, 3, 3]: "
        "expected the weight of Mixed_4b Branch_1 1x1x1 conv [N, 60, 1, 1, 1]"
    )


def test_a_removed_conv_is_named_in_one_line(tmp_path):
    model = make_reference(SMALL, seed=11)
    block = model.body[3]
    block.path2 = nn.Sequential(block.path2[0])  # Branch_2 without its 3x3x3
    with pytest.raises(
        MocohdError,
        match=r"cannot place tensor 'body\.3\.path3\.1\.conv\.weight' \[8, 60, 1, 1, 1\]: "
        r"expected the weight of Mixed_4b Branch_2 3x3x3 conv \[N, 2, 3, 3, 3\]",
    ):
        i3d_format.convert(_scripted_archive(tmp_path, model))


def test_too_few_or_too_many_convolutions(tmp_path, scripted):
    _, path = scripted
    a = torchscript.read_archive(path)
    del a.root.state["head"]  # no logits
    with pytest.raises(
        MocohdError,
        match=r"holds 57 convolution weights .* the Inception-I3D 58 .* the first missing "
        r"is Logits$",
    ):
        i3d_format.convert(a)
    a = torchscript.read_archive(path)
    head = a.root.state["head"]
    extra = type(head)()  # a second head, after the first
    extra.__setstate__(dict(head.state))
    a.root.state["extra"] = extra
    with pytest.raises(
        MocohdError,
        match=r"cannot place tensor 'extra\.weight' \[400, 128, 1, 1, 1\]: the archive "
        r"holds 59 convolution weights",
    ):
        i3d_format.convert(a)


def test_unknown_vectors_and_bad_values_are_refused(scripted):
    _, path = scripted
    a = torchscript.read_archive(path)
    norm = a.objects()["body.0.path0.norm"]
    norm.state["weird"] = torch.ones(norm.state["running_mean"].shape)
    with pytest.raises(
        MocohdError,
        match=r"cannot place tensor 'body\.0\.path0\.norm\.weird' \[8\]: a vector after "
        r"the convolution weight 'body\.0\.path0\.conv\.weight' that is neither",
    ):
        i3d_format.convert(a)
    a = torchscript.read_archive(path)
    norm = a.objects()["body.0.path0.norm"]
    norm.state["running_var"] = norm.state["running_var"].clone()
    norm.state["running_var"][0] = float("nan")
    with pytest.raises(MocohdError, match=r"tensor body\.0\.path0\.norm\.running_var holds NaN or infinite values"):
        i3d_format.convert(a)
    a = torchscript.read_archive(path)
    a.objects()["body.0.path0.norm"].state["running_var"] = -torch.ones(8)
    with pytest.raises(MocohdError, match="holds a negative variance"):
        i3d_format.convert(a)
    a = torchscript.read_archive(path)
    del a.objects()["body.0.path0.norm"].state["running_mean"]
    with pytest.raises(
        MocohdError,
        match=r"the batch norm of the convolution 'body\.0\.path0\.conv\.weight' has no "
        "running mean",
    ):
        i3d_format.convert(a)


class _Flat(nn.Module):
    """Every tensor of a reference network in one module, as prefixed buffers in forward order
    ('u0_conv_weight', 'u0_bn_weight', 'u0_bn_bias', 'u0_bn_running_mean', ...): the layout of a
    hand-written port, placed by order and attribute names alone."""

    def __init__(self, ref: nn.Module):
        super().__init__()
        i = 0
        for m in ref.modules():
            if isinstance(m, nn.Conv3d):
                self.register_buffer(f"u{i}_conv_weight", m.weight.detach().clone())
                if m.bias is not None:
                    self.register_buffer(f"u{i}_conv_bias", m.bias.detach().clone())
            elif isinstance(m, nn.BatchNorm3d):
                for name in ("weight", "bias", "running_mean", "running_var"):
                    self.register_buffer(f"u{i}_bn_{name}", getattr(m, name).detach().clone())
                i += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_a_flat_archive_with_prefixed_names_converts_like_the_nested_one(tmp_path, scripted):
    _, path = scripted
    flat = _scripted_archive(tmp_path, _Flat(make_reference(SMALL, seed=0)))
    assert list(flat.module_types()) == [""] and len(flat.named_tensors()) == 57 * 5 + 2
    config_f, tensors_f, _ = i3d_format.convert(flat)
    config_s, tensors_s, _ = i3d_format.convert(torchscript.read_archive(path))
    assert config_f == config_s
    assert all(torch.equal(tensors_f[k], tensors_s[k]) for k in tensors_s)


def test_files_that_are_no_i3d_archive_say_what_is_wrong_with_them_as_one(scripted, tmp_path):
    """Imported with kind i3d, a truncated archive, a state dict, a legacy torch file
    or a pickle is not said to 'hold image generators': the message says what it lacks as an I3D."""
    from mocohd_cli.formats import read_any
    from mocohd_cli.loaders import import_model

    ref, path = scripted
    raw = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    torch.save(ref.state_dict(), tmp_path / "state.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    (tmp_path / "pickled.pkl").write_bytes(pickle.dumps({"w": [1, 2]}, protocol=2))
    says = {
        "cut.pt": "not a readable I3D TorchScript archive (a truncated or damaged zip)",
        "state.pt": "a PyTorch state dict or checkpoint (torch.save), not an I3D TorchScript archive",
        "legacy.pt": "a legacy torch.save file, not an I3D TorchScript archive",
        "pickled.pkl": "a Python pickle, not an I3D TorchScript archive",
    }
    for name, words in says.items():
        f = tmp_path / name
        for read in (partial(read_any, f, kind="i3d"), partial(import_model, f, "x", kind="i3d")):
            with pytest.raises(MocohdError) as e:
                read()
            msg = str(e.value)
            assert msg.startswith(f"{f}: {words}") and "image generator" not in msg and "\n" not in msg, msg
            assert "i3d_torchscript.pt" in msg
