"""NVIDIA stylegan2-ada-pytorch network pickles (``.pkl`` with ``G_ema``).

Such a pickle stores each network as a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta``
holds the Python *source code* of the module (``module_src``), its class name
and its ``__dict__`` (parameters, buffers, sub-modules, constructor
arguments). Loading it with plain ``pickle`` executes that source.

We never do. ``SafeUnpickler`` resolves only an allow-list of globals:
plain containers, PyTorch's tensor rebuild functions (storages themselves are
read with ``torch.load(weights_only=True)``), and two inert stand-ins for
NVIDIA's persistence hook and ``dnnlib.util.EasyDict``. Anything else --
``os.system``, ``builtins.exec``, an unknown class -- stops the load with an
error before it is called. The stand-in keeps ``module_src`` as a string that
nothing reads.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import MocohdError
from .checks import PickledState, brief, check_storage
from .stylegan2_layout import check_fir_kernel, infer_channel_layout
from .torch_io import weights_only_reason

FORMAT = "nvidia-pickle"


class PersistentObject(PickledState):
    """Inert stand-in for a network saved by NVIDIA's ``torch_utils.persistence``."""

    def __init__(self, meta: dict):
        if not isinstance(meta, dict):
            raise RefusedContent("malformed persistent object")
        self.class_name = str(meta.get("class_name", ""))
        self.state = meta.get("state") or {}
        # meta["module_src"] (the network's Python source) is dropped unread: never executed.

    def children(self) -> dict:
        return dict(self.state.get("_modules") or {})

    def attr(self, name, default=None):
        return self.state.get(name, default)

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and buffers of this module and its children, by dotted name."""
        out = {}
        for group in ("_parameters", "_buffers"):
            for k, v in (self.state.get(group) or {}).items():
                if isinstance(v, torch.Tensor):
                    out[prefix + k] = v
        for k, child in self.children().items():
            if isinstance(child, PersistentObject):
                out.update(child.tensors(f"{prefix}{k}."))
        return out


class EasyDict(dict):
    """Inert stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access)."""


def _load_storage_bytes(b: bytes):
    # PyTorch pickles a storage as torch.save() bytes; read them without code execution.
    try:
        return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise RefusedContent(f"a tensor storage in it holds more than tensor data ({weights_only_reason(e)})") from None


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data  # a plain tensor: nothing here trains


def _numpy_scalar(dtype, data=None):
    # NVIDIA's modules keep gains such as sqrt(2) as numpy scalars: raw bytes + a dtype.
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise RefusedContent("numpy object scalars are not allowed")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("malformed numpy scalar")
    return np.frombuffer(data, dtype)[0]


def _numpy_array(cls, shape, dtype_code):
    if cls is not np.ndarray:
        raise RefusedContent("only plain numpy arrays are allowed")
    # numpy pickles an array as _reconstruct(ndarray, (0,), b'b') + __setstate__(shape, dtype, raw bytes):
    # the real shape comes with its data. A large placeholder would be allocated for nothing.
    if not isinstance(shape, tuple) or len(shape) > 32 or not all(isinstance(n, int) and 0 <= n <= 1 for n in shape):
        raise pickle.UnpicklingError("malformed numpy array")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


_NUMPY = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _NUMPY[(_mod, "scalar")] = _numpy_scalar
    _NUMPY[(_mod, "_reconstruct")] = _numpy_array

_ALLOWED = {
    **_NUMPY,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch", "Size"): torch.Size,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentObject,
    ("dnnlib.util", "EasyDict"): EasyDict,
}


class RefusedContent(pickle.UnpicklingError):
    """The pickle asks for something outside the allow-list."""


class SafeUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; everything else is refused unexecuted."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedContent(f"{module}.{name} is not on the allow-list of plain data types") from None

    def persistent_load(self, pid):
        raise RefusedContent("persistent ids are not supported")


def read_pickle(path: str | Path) -> object:
    """The pickle's contents, through ``SafeUnpickler``; refuses tensors that claim
    more data than the file holds (``checks.check_storage``)."""
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f).load()
    except FileNotFoundError:
        raise MocohdError(f"{path}: no such file")
    except RefusedContent as e:
        raise MocohdError(f"{path}: refused to load: {e}; nothing in it was executed") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError,
            MemoryError, OSError, OverflowError, RecursionError) as e:
        raise MocohdError(f"{path}: not a readable network pickle (corrupt or truncated?): {brief(e)}") from e
    check_storage(obj, Path(path).stat().st_size, path)
    return obj


def _is_stylegan3(g: PersistentObject) -> bool:
    synthesis = g.children().get("synthesis")
    if not isinstance(synthesis, PersistentObject):
        return False
    kids = synthesis.children()
    return isinstance(kids.get("input"), PersistentObject) and kids["input"].class_name == "SynthesisInput"


def convert(obj: object) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """NVIDIA pickle contents -> (stylegan2 config dict, our state dict, notes)."""
    g = obj.get("G_ema") if isinstance(obj, dict) else obj
    if not isinstance(g, PersistentObject):
        raise MocohdError("not a StyleGAN network pickle: no 'G_ema' network in it")
    if _is_stylegan3(g):
        raise MocohdError("StyleGAN3 is not supported yet (this is a StyleGAN3 network pickle)")
    if g.class_name != "Generator" or not {"mapping", "synthesis"} <= set(g.children()):
        raise MocohdError(f"unknown architecture: G_ema is a {g.class_name or 'unnamed class'} without mapping/synthesis networks")
    if int(g.attr("c_dim", 0) or 0) > 0:
        raise MocohdError("conditional StyleGAN2 generators (c_dim > 0) are not supported yet")

    mapping, synthesis = g.children()["mapping"], g.children()["synthesis"]
    blocks = {int(k[1:]): v for k, v in synthesis.children().items() if k.startswith("b") and k[1:].isdigit()}
    if not blocks:
        raise MocohdError("unknown architecture: no synthesis blocks b4..bR")
    for res, block in blocks.items():
        arch = block.attr("architecture", "skip")
        if arch != "skip":
            raise MocohdError(f"unknown architecture: synthesis block b{res} uses '{arch}'; only the 'skip' generator (configs e/f) is supported")

    raw = g.tensors()
    out: dict[str, torch.Tensor] = {}
    channels = {}
    for name, t in raw.items():
        if name.endswith("resample_filter"):
            check_fir_kernel(t, name)
            continue
        if name.startswith("mapping.embed") or name == "mapping.w_avg" and t.ndim != 1:
            raise MocohdError(f"unknown architecture: unexpected tensor {name}")
        out[name] = t.float()
    for res in blocks:
        key = f"synthesis.b{res}.conv1.weight"
        if key not in out:
            raise MocohdError(f"unknown architecture: missing {key}")
        channels[res] = out[key].shape[0]

    fcs = [m for m in mapping.children() if m.startswith("fc")]
    lr_muls = {float(mapping.children()[m].attr("lr_multiplier", 0.01)) for m in fcs}
    clamps = {blk.children()[n].attr("conv_clamp") for blk in blocks.values() for n in ("conv1", "torgb") if n in blk.children()}
    if len(lr_muls) != 1 or len(clamps) != 1:
        raise MocohdError("unknown architecture: mapping layers or convolutions differ in lr multiplier / clamp")
    clamp = clamps.pop()
    base, cmax = infer_channel_layout(channels)
    img_res = int(g.attr("img_resolution", max(blocks)))
    if img_res != max(blocks):
        raise MocohdError(f"unknown architecture: img_resolution {img_res} but blocks up to {max(blocks)}")
    config = dict(
        resolution=img_res,
        z_dim=int(g.attr("z_dim")),
        w_dim=int(g.attr("w_dim")),
        img_channels=int(g.attr("img_channels", 3)),
        mapping_layers=len(fcs),
        mapping_lr_mul=lr_muls.pop(),
        channel_base=base,
        channel_max=cmax,
        conv_clamp=None if clamp is None else float(clamp),
        w_avg_beta=float(mapping.attr("w_avg_beta", 0.995) or 0.995),
    )
    return config, out, {}
