"""Write tiny network pickles in NVIDIA's stylegan2-ada-pytorch layout.

The real files are made by ``pickle.dump`` of modules decorated with
``torch_utils.persistence``: every network becomes a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` whose ``meta``
holds the module's source code, class name and ``__dict__``; constructor
arguments are ``dnnlib.util.EasyDict``s; tensors go through PyTorch's own
reductions. We produce the same opcodes and global names by registering
stand-in modules under those names while pickling (and removing them after),
so the reader under test never sees anything of ours.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import sys
import types

import torch

from mocohd_cli.generators import stylegan2 as sg2
from mocohd_cli.ops import fir_filter_2d

CLASS_NAMES = {
    sg2.StyleGAN2Generator: "Generator",
    sg2.MappingNetwork: "MappingNetwork",
    sg2.FullyConnected: "FullyConnectedLayer",
    sg2.SynthesisNetwork: "SynthesisNetwork",
    sg2.SynthesisBlock: "SynthesisBlock",
    sg2.SynthesisLayer: "SynthesisLayer",
    sg2.ToRGB: "ToRGBLayer",
}

# What a hostile file would run if a loader executed module_src.
HOSTILE_SRC = "import pathlib\npathlib.Path({marker!r}).write_text('pwned')\n"


class _Persistent:
    """Pickles as _reconstruct_persistent_obj(meta), like NVIDIA's persistence decorator."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,))


@contextlib.contextmanager
def nvidia_modules():
    """Temporarily register torch_utils.persistence and dnnlib.util under their real names."""
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"]
    saved = {n: sys.modules.get(n) for n in names}
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called: we only pickle
        raise AssertionError("stand-in")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    sys.modules.update({"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                        "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util})
    try:
        yield util.EasyDict
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def _persist(module: torch.nn.Module, easydict, module_src: str, class_name=None, extra_state=None) -> _Persistent:
    state = {
        "training": False,
        "_parameters": collections.OrderedDict((k, v) for k, v in module._parameters.items()),
        "_buffers": collections.OrderedDict((k, v) for k, v in module._buffers.items()),
        "_modules": collections.OrderedDict(
            (k, _persist(m, easydict, module_src)) for k, m in module._modules.items()
        ),
        "_init_args": (),
        "_init_kwargs": easydict(),
    }
    cls = type(module)
    if cls is sg2.StyleGAN2Generator:
        c = module.cfg
        state.update(z_dim=c.z_dim, c_dim=0, w_dim=c.w_dim, img_resolution=c.resolution, img_channels=c.img_channels)
        state["_init_kwargs"] = easydict(
            z_dim=c.z_dim, c_dim=0, w_dim=c.w_dim, img_resolution=c.resolution, img_channels=c.img_channels,
            mapping_kwargs=easydict(num_layers=c.mapping_layers),
            synthesis_kwargs=easydict(channel_base=c.channel_base, channel_max=c.channel_max, num_fp16_res=0, conv_clamp=c.conv_clamp),
        )
    elif cls is sg2.MappingNetwork:
        state.update(num_layers=module.num_layers, w_avg_beta=0.995, num_ws=None)
    elif cls is sg2.FullyConnected:
        state.update(activation=module.activation, lr_multiplier=module.bias_gain, weight_gain=module.weight_gain, bias_gain=module.bias_gain)
    elif cls is sg2.SynthesisBlock:
        state.update(architecture="skip", resolution=module.resolution, num_conv=module.num_conv, num_torgb=1)
        state["_buffers"]["resample_filter"] = fir_filter_2d()
    elif cls is sg2.SynthesisLayer:
        state.update(up=module.up, resolution=module.resolution, conv_clamp=module.conv_clamp, activation="lrelu", use_noise=True)
        state["_buffers"] = collections.OrderedDict(
            [("resample_filter", fir_filter_2d()), ("noise_const", module.noise_const)]
        )
    elif cls is sg2.ToRGB:
        state.update(conv_clamp=module.conv_clamp, weight_gain=module.weight_gain)
    state.update(extra_state or {})
    meta = dict(type="class", version=4, module_src=module_src, class_name=class_name or CLASS_NAMES[cls], state=state)
    return _Persistent(meta)


def write_nvidia_pickle(path, G: sg2.StyleGAN2Generator, marker: str = "/nonexistent/marker", stylegan3: bool = False) -> None:
    """Pickle ``G`` as {'G': ..., 'D': None, 'G_ema': ...} in NVIDIA's layout.

    ``module_src`` is a program that writes ``marker``: loading must never run it.
    With ``stylegan3=True`` the synthesis network gets StyleGAN3's SynthesisInput.
    """
    src = HOSTILE_SRC.format(marker=str(marker))
    G = G.to("cpu")
    with nvidia_modules() as easydict:
        g = _persist(G, easydict, src)
        if stylegan3:
            synthesis = g.meta["state"]["_modules"]["synthesis"]
            inp = _persist(torch.nn.Module(), easydict, src, class_name="SynthesisInput")
            synthesis.meta["state"]["_modules"] = collections.OrderedDict([("input", inp)])
        data = {"G": g, "D": None, "G_ema": g, "training_set_kwargs": easydict(resolution=G.resolution), "augment_pipe": None}
        with open(path, "wb") as f:
            pickle.dump(data, f)


class HostileReduce:
    """An object whose unpickling would run os.system (writing ``marker``)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))
