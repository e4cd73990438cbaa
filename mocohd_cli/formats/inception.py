"""pytorch-fid's Inception weights (``pt_inception-2015-12-05-6726825d.pth``) to our
``detectors.InceptionV3``, batch norm folded into the convolutions.

The file is a ``torch.save`` of a state dict in torchvision's ``Inception3``
layout (pytorch-fid ``fid_inception_v3`` loads it into one), 94 ``BasicConv2d``:

    Conv2d_1a_3x3.conv.weight [32, 3, 3, 3]            -> Conv2d_1a_3x3.weight
    Conv2d_1a_3x3.bn.weight / bias / running_mean / running_var [32]
                                                        -> folded: Conv2d_1a_3x3.weight / .bias
    Mixed_5b.branch1x1.conv.weight, Mixed_5b.branch1x1.bn.*, ... Mixed_7c.branch_pool.*
    fc.weight [1008, 2048], fc.bias [1008]              -> ignored (the logits; FID uses the pool features)

``AuxLogits.*`` and ``*.num_batches_tracked`` are ignored too. The state dict of
pytorch-fid's ``InceptionV3`` wrapper module is accepted as well: it holds the
same modules as ``blocks.N.M.``, N the output block, M the position in it
(pytorch-fid ``InceptionV3.__init__``; the max pools hold no tensors):

    blocks.0.0/1/2   Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3
    blocks.1.0/1     Conv2d_3b_1x1, Conv2d_4a_3x3
    blocks.2.0..7    Mixed_5b, 5c, 5d, 6a, 6b, 6c, 6d, 6e
    blocks.3.0/1/2   Mixed_7a, 7b, 7c

Folding (torchvision ``BasicConv2d``: conv without bias, ``BatchNorm2d(eps=0.001)``
in eval mode, ReLU): with s = bn.weight / sqrt(running_var + 0.001),

    weight = conv.weight * s[:, None, None, None],   bias = bn.bias - running_mean * s

computed in float64, stored as float32.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..detectors.inception import InceptionConfig, conv_names, conv_shape
from ..errors import MocohdError
from .checks import check_real, first_non_finite
from .torch_io import read_torch_file

FORMAT = "pytorch-fid"
FAMILY = "inception"
BN_EPS = 0.001  # torchvision BasicConv2d's BatchNorm2d(eps=0.001)
FID_CLASSES = 1008  # the TF graph's logits: fc.weight [1008, 2048]

# pytorch-fid InceptionV3's blocks.N.M -> the Inception3 module it holds
_WRAPPER = {
    (0, 0): "Conv2d_1a_3x3",
    (0, 1): "Conv2d_2a_3x3",
    (0, 2): "Conv2d_2b_3x3",
    (1, 0): "Conv2d_3b_1x1",
    (1, 1): "Conv2d_4a_3x3",
    **{
        (2, i): name
        for i, name in enumerate(
            ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e")
        )
    },
    (3, 0): "Mixed_7a",
    (3, 1): "Mixed_7b",
    (3, 2): "Mixed_7c",
}
_WRAPPER_OF = {module: key for key, module in _WRAPPER.items()}
_WRAPPER_KEY = re.compile(r"blocks\.(\d+)\.(\d+)\.(.+)")
_BN = ("weight", "bias", "running_mean", "running_var")


def _ignored(key: str) -> bool:
    return key.startswith(("fc.", "AuxLogits.")) or key.endswith(".num_batches_tracked")


def _fail(origin, message: str) -> MocohdError:
    """The error to raise: ``origin: message`` (``message`` alone when there is no origin)."""
    return MocohdError(message if origin is None else f"{origin}: {message}")


def _shape(s) -> str:
    return "[" + ", ".join(str(int(x)) for x in s) + "]"


def _layout(sd: dict, origin) -> tuple[dict[str, object], bool]:
    """(Inception3 name -> value, whether the file is pytorch-fid's wrapper) for the entries that matter."""
    keys = [k for k in sd if not _ignored(k)]
    wrapper = bool(keys) and all(k.startswith("blocks.") for k in keys)
    if not keys or not (wrapper or any(k.startswith(("Conv2d_", "Mixed_")) for k in keys)):
        raise _fail(origin, "not a pytorch-fid Inception state dict (no Conv2d_* or Mixed_* tensors)")
    out = {}
    for k in keys:
        name = k
        if wrapper:
            m = _WRAPPER_KEY.fullmatch(k)
            module = _WRAPPER.get((int(m.group(1)), int(m.group(2)))) if m else None
            if module is None:
                raise _fail(origin, f"unexpected tensor {k} in a pytorch-fid InceptionV3 state dict")
            name = f"{module}.{m.group(3)}"
        out[name] = sd[k]
    return out, wrapper


def _file_name(name: str, wrapper: bool) -> str:
    """How the Inception3 tensor ``name`` is spelled in the file (for messages)."""
    if not wrapper:
        return name
    module, _, rest = name.partition(".")
    n, i = _WRAPPER_OF[module]
    return f"blocks.{n}.{i}.{rest}"


def convert(state_dict, origin=None) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, tensors of ``InceptionV3``, notes) from a pytorch-fid / torchvision
    Inception3 state dict, or pytorch-fid's ``InceptionV3`` wrapper's. ``MocohdError``
    (one line, after ``origin: `` when given, e.g. the file's path) names the first
    missing, misshaped, non-finite or unexpected tensor."""
    if not isinstance(state_dict, dict):
        raise _fail(
            origin,
            f"not a pytorch-fid Inception state dict (it holds {type(state_dict).__name__}, not a dict of tensors)",
        )
    bad = next((k for k in state_dict if not isinstance(k, str)), None)
    if bad is not None:
        raise _fail(origin, f"not a pytorch-fid Inception state dict (key {bad!r} is not a name)")
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    fc = sd.get("fc.weight")
    if isinstance(fc, torch.Tensor) and fc.ndim == 2 and fc.shape[0] != FID_CLASSES:
        raise _fail(
            origin,
            f"fc.weight is {_shape(fc.shape)}: an Inception-v3 with {fc.shape[0]} classes "
            f"(torchvision's ImageNet one?), not FID's 2015-12-05 graph ({FID_CLASSES} classes)",
        )
    found, wrapper = _layout(sd, origin)
    source: dict[str, torch.Tensor] = {}  # name in the file -> tensor, for the finite check
    bns: dict[str, dict[str, torch.Tensor]] = {}  # convolution -> its five tensors, float64
    for name in conv_names():
        shape = conv_shape(name)
        bns[name] = {}
        for part, want in [("conv.weight", shape)] + [(f"bn.{b}", shape[:1]) for b in _BN]:
            key = f"{name}.{part}"
            shown = _file_name(key, wrapper)
            t = found.pop(key, None)
            if t is None:
                raise _fail(origin, f"missing tensor {shown} (the FID Inception-v3 needs it)")
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise _fail(origin, f"{shown} is not a floating-point tensor")
            try:
                check_real(shown, t, "")
            except MocohdError as e:
                raise _fail(origin, str(e).removeprefix(": ")) from None
            if tuple(t.shape) != tuple(want):
                raise _fail(origin, f"{shown} is {_shape(t.shape)}, the FID Inception-v3 needs {_shape(want)}")
            source[shown] = t
            bns[name][part] = t.detach().to("cpu", torch.float64)
    if found:
        raise _fail(
            origin, f"unexpected tensor {_file_name(sorted(found)[0], wrapper)} (not part of the FID Inception-v3)"
        )
    bad = first_non_finite(source)
    if bad is not None:
        raise _fail(origin, f"tensor {bad} holds NaN or infinite values (a damaged file); refusing it")
    tensors: dict[str, torch.Tensor] = {}
    for name, p in bns.items():
        if bool((p["bn.running_var"] < 0).any()):
            raise _fail(
                origin, f"{_file_name(name + '.bn.running_var', wrapper)} holds negative variances (a damaged file)"
            )
        scale = p["bn.weight"] / torch.sqrt(p["bn.running_var"] + BN_EPS)
        tensors[name + ".weight"] = (p["conv.weight"] * scale[:, None, None, None]).float().contiguous()
        tensors[name + ".bias"] = (p["bn.bias"] - p["bn.running_mean"] * scale).float().contiguous()
    bad = first_non_finite(tensors)
    if bad is not None:  # finite inputs can still overflow float32 once scaled
        raise _fail(origin, f"folding batch norm into {bad} overflows float32 (a damaged file)")
    notes = {
        "layout": "pytorch-fid InceptionV3" if wrapper else "Inception3",
        "bn_eps": BN_EPS,
        "has_fc": "fc.weight" in sd,
    }
    return InceptionConfig().to_dict(), tensors, notes


def read(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """``convert`` of the state dict in a ``torch.save`` file, read with
    ``torch.load(weights_only=True)`` (``torch_io.read_torch_file``): a file holding
    code is refused unexecuted. Errors are one line starting with the path."""
    obj = read_torch_file(path)
    return convert(obj, origin=path)
