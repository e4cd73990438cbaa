"""Checks that a model file's parts agree before anything is built from it.

A file can lie: its config can describe a module thousands of times larger
than the tensors it holds (building that module would allocate it), a
tensor's shape can claim more values than its data holds (a stride-0 view in
a pickle), and its weights can be NaN or infinite (a diverged run renders
garbage). Every reader runs these before a module is built:

    check_storage(obj)    no tensor claims more bytes than its storage holds
    check_shapes(...)     the config's state-dict shapes, computed without
                          building anything, equal the file's tensor shapes
    check_finite(...)     no NaN or infinity in any floating-point tensor

Once the shapes agree, building the module allocates what the file holds.
"""

from __future__ import annotations

import re

import torch

from ..detectors import FAMILIES as DETECTOR_FAMILIES
from ..encoders import FAMILY as ENCODER_FAMILY, EncoderConfig
from ..errors import MocohdError
from ..generators import FAMILIES
from ..motion.generator import FAMILY as MOTION_FAMILY, OPTIONAL as MOTION_OPTIONAL, MotionConfig
from ..pca import PCA_FAMILY
from ..perceptual import FAMILY as VGG_FAMILY, VGG16Config

MAX_NODES = 1_000_000  # objects in a checkpoint's containers (a 1024 px NVIDIA generator: about 1,000)
LATENT_FAMILY = "stylegan2-w"  # latents of StyleGAN2 generators: w's per layer (+ noise maps)
# latent family -> the image generator family its latents belong to
LATENT_FAMILIES = {LATENT_FAMILY: "stylegan2", "stylegan3-w": "stylegan3", "biggan-deep-w": "biggan-deep"}
LATENT_SPACES = ("w", "w+")  # one w for every layer, or one per layer
MAX_LATENTS = 4096  # photos in one latent file


def brief(e: BaseException, limit: int = 160) -> str:
    """The first sentence of an exception's message, for the end of a one-line error."""
    text = (str(e).strip().splitlines() or ["malformed"])[0]
    return re.split(r"(?<=[a-z\]])\. ", text, maxsplit=1)[0][:limit]


def _shape(s) -> str:
    return "[" + ", ".join(str(int(x)) for x in s) + "]"


def first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The first (by name) floating-point tensor holding a NaN or an infinity, or None."""
    for name in sorted(tensors):
        if not tensor_is_finite(tensors[name]):
            return name
    return None


_REDUCIBLE = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def tensor_is_finite(t: torch.Tensor) -> bool:
    if t.is_complex():
        return bool(torch.isfinite(t).all())
    if not t.is_floating_point() or t.numel() == 0:
        return True
    if t.dtype not in _REDUCIBLE:  # float8 and the like: no reductions of their own
        t = t.float()
    # aminmax propagates NaN and sees +-inf: one reduction pass, no boolean mask
    # (4x faster than isfinite(t).all() on a 130 MB model).
    lo, hi = torch.aminmax(t.detach().reshape(-1))
    return bool(torch.isfinite(lo) and torch.isfinite(hi))


def check_real(name: str, t: torch.Tensor, origin) -> None:
    """Weights are dense real numbers: refuse sparse, quantized, meta and complex tensors."""
    if t.layout != torch.strided or t.is_quantized or t.device.type == "meta":
        raise MocohdError(
            f"{origin}: tensor {name} is not a plain dense tensor ({t.layout}, {t.dtype}, {t.device.type}): "
            "model weights are stored as plain arrays of numbers"
        )
    if t.is_complex():
        raise MocohdError(f"{origin}: tensor {name} holds complex numbers; model weights are real")


def check_finite(tensors: dict[str, torch.Tensor], origin) -> None:
    bad = first_non_finite(tensors)
    if bad is not None:
        raise MocohdError(
            f"{origin}: tensor {bad} holds NaN or infinite values (a diverged or damaged model); refusing it"
        )


class PickledState:
    """Base of the inert stand-ins a safe unpickler builds for pickled objects
    (``nvidia.PersistentObject``): ``state`` is the object's pickled ``__dict__``,
    whose tensors ``check_storage`` walks like any other container's."""

    state: dict


def _children(obj):
    """(key, child) pairs of the containers a checkpoint is made of."""
    if isinstance(obj, dict):
        return obj.items()
    if isinstance(obj, (list, tuple)):
        return enumerate(obj)
    if isinstance(obj, PickledState):
        return obj.state.items() if isinstance(obj.state, dict) else ()
    return ()


def check_storage(obj, file_size: int, origin) -> None:
    """Refuse a checkpoint in which some tensor claims more values than its storage
    holds (a zero-stride or overlapping view), or whose tensors together claim far
    more than the file's size (one storage shared many times over): converting
    them would allocate the claim."""
    stack = [("", obj)]
    total = visits = 0
    while stack:
        path, o = stack.pop()
        visits += 1
        if visits > MAX_NODES:  # shared or self-containing containers would make this walk (and a converter's) endless
            raise MocohdError(f"{origin}: more than {MAX_NODES:,} nested objects (a damaged or hostile file)")
        if isinstance(o, torch.Tensor):  # every reference counts: each may become a copy
            check_real(path or "(top level)", o, origin)
            need = o.numel() * o.element_size()
            have = max(o.untyped_storage().nbytes() - o.storage_offset() * o.element_size(), 0)
            if need > have:
                raise MocohdError(
                    f"{origin}: tensor {path or '(top level)'} claims {_shape(o.shape)} values "
                    f"({need:,} bytes) but its data holds {have:,} bytes (a damaged or hostile file)"
                )
            total += need
            if total > 2 * file_size + (1 << 20):
                raise MocohdError(
                    f"{origin}: its tensors claim more than {total / 1e6:,.1f} MB but the file holds "
                    f"{file_size / 1e6:,.1f} MB (a damaged or hostile file)"
                )
            continue
        for k, child in _children(o):
            # a pickled module keeps its tensors in _parameters/_buffers and children in _modules
            name = path if k in ("_parameters", "_buffers", "_modules") else f"{path}.{k}" if path else str(k)
            stack.append((name, child))


def check_size(tensors: dict[str, torch.Tensor], file_size: int, origin) -> None:
    """The converted float32 tensors of a checkpoint cannot be much larger than the
    file (2x for float16 files, plus room for an estimated w_avg): tensors that share
    one storage many times over would multiply it."""
    total = sum(t.numel() * 4 for t in tensors.values())
    if total > 2 * file_size + (1 << 20):
        raise MocohdError(
            f"{origin}: its tensors claim {total / 1e6:,.1f} MB of weights but the file holds "
            f"{file_size / 1e6:,.1f} MB (a damaged or hostile file)"
        )


def expected_shapes(kind: str, family: str, config: dict) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """(name -> shape of every tensor the config needs, names that may be absent), from
    the config alone. ValueError/TypeError for a config that is not one."""
    if not isinstance(config, dict):
        raise ValueError("the config is not a JSON object")
    if kind == "image":
        if family not in FAMILIES:
            raise MocohdError(f"unknown image generator family {family!r} (known: {', '.join(FAMILIES)})")
        return FAMILIES[family][0].from_dict(config).state_shapes(), set()
    if kind == "motion":
        return MotionConfig.from_dict(config).state_shapes(), set(MOTION_OPTIONAL)
    if kind == "pca":
        k, d = config.get("n_components"), config.get("w_dim")
        for name, v in (("n_components", k), ("w_dim", d)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= (1 << 16):
                raise ValueError(f"{name} must be a whole number in 1..65536, got {v!r}")
        if k > d:
            raise ValueError(f"n_components ({k}) cannot exceed w_dim ({d})")
        shapes = {"components": (k, d), "stdev": (k,), "var_ratio": (k,), "mean": (d,), "var": (d,)}
        return shapes, {"var_ratio", "mean", "var"}
    if kind == "vgg16":
        if family != VGG_FAMILY:
            raise MocohdError(f"unknown vgg16 family {family!r}")
        return VGG16Config.from_dict(config).state_shapes(), set()
    if kind == "encoder":
        if family != ENCODER_FAMILY:
            raise MocohdError(f"unknown encoder family {family!r}")
        return EncoderConfig.from_dict(config).state_shapes(), set()
    if kind == "latent":
        if family not in LATENT_FAMILIES:
            raise MocohdError(f"unknown latent family {family!r} (known: {', '.join(LATENT_FAMILIES)})")
        return latent_shapes(config, family), set()
    if kind in DETECTOR_FAMILIES:  # a detector's kind is its family: i3d, inception
        if family != kind:
            raise MocohdError(f"unknown {kind} family {family!r}")
        return DETECTOR_FAMILIES[kind][0].from_dict(config).state_shapes(), set()
    raise MocohdError(f"unknown model kind {kind!r}")


def noise_resolutions(resolution: int) -> list[int]:
    """The sizes of a StyleGAN2 generator's noise maps, in the order of its ``noise`` lists:
    one at 4 px, then two per block from 8 px to ``resolution``."""
    return [4] + [r for r in (2**i for i in range(3, resolution.bit_length())) for _ in range(2)]


def latent_shapes(config: dict, family: str = LATENT_FAMILY) -> dict[str, tuple[int, ...]]:
    """The tensors of a latent file (kind ``latent``): ``ws`` [count, num_ws, w_dim]; for StyleGAN2
    (``stylegan2-w``), when its config says ``noise``, ``noise.I`` [count, 1, r, r] for each noise
    map I of the generator; for BigGAN (``biggan-deep-w``: one w, space w) ``classes`` [count,
    c_dim], each latent's class vector. StyleGAN3 (``stylegan3-w``) has no noise maps."""
    n, num_ws, w_dim, res = (config.get(k) for k in ("count", "num_ws", "w_dim", "resolution"))
    for name, v, hi in (
        ("count", n, MAX_LATENTS),
        ("num_ws", num_ws, 64),
        ("w_dim", w_dim, 1 << 16),
        ("resolution", res, 4096),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
            raise ValueError(f"{name} must be a whole number in 1..{hi}, got {v!r}")
    if res < 4 or res & (res - 1):
        raise ValueError(f"resolution must be a power of two in 4..4096, got {res}")
    generator = LATENT_FAMILIES.get(family, family)
    if generator == "stylegan2" and num_ws != 2 * (res.bit_length() - 1) - 2:
        raise ValueError(f"a {res} px StyleGAN2 has {2 * (res.bit_length() - 1) - 2} w's per image, not {num_ws}")
    if config.get("space") not in LATENT_SPACES:
        raise ValueError(f"space must be one of {', '.join(LATENT_SPACES)}, got {config.get('space')!r}")
    if not isinstance(config.get("noise", False), bool):
        raise ValueError(f"noise must be true or false, got {config.get('noise')!r}")
    if config.get("noise", False) and generator != "stylegan2":
        raise ValueError(f"a {generator} generator has no noise maps")
    for key in ("distance", "photos"):
        if key in config and (not isinstance(config[key], list) or len(config[key]) != n):
            raise ValueError(f"{key} must list one entry per latent ({n})")
    if not all(isinstance(p, dict) for p in config.get("photos") or []):
        raise ValueError("photos must be objects (file, sha256)")
    if not all(isinstance(d, (int, float)) and not isinstance(d, bool) for d in config.get("distance") or []):
        raise ValueError("distances must be numbers")
    shapes = {"ws": (n, num_ws, w_dim)}
    if config.get("noise", False):
        shapes.update({f"noise.{i}": (n, 1, r, r) for i, r in enumerate(noise_resolutions(res))})
    if generator == "biggan-deep":
        c = config.get("c_dim")
        if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= 1 << 16:
            raise ValueError(f"c_dim must be a whole number in 1..65536, got {c!r}")
        if num_ws != 1 or config.get("space") != "w":
            raise ValueError(f"a BigGAN latent is one w (space w), not {num_ws} (space {config.get('space')})")
        shapes["classes"] = (n, c)
    return shapes


def check_shapes(kind: str, family: str, config: dict, shapes: dict[str, tuple[int, ...]], origin) -> None:
    """Refuse a model whose tensors (``shapes``: name -> shape, from a file header or
    loaded tensors) are not exactly those its config describes."""
    if kind == "motion":
        if family != MOTION_FAMILY:
            raise MocohdError(f"{origin}: unknown motion model family {family!r}")
    if kind == "pca":
        if family != PCA_FAMILY:
            raise MocohdError(f"{origin}: unknown PCA family {family!r}")
    what = f"{family or kind} config"
    try:
        expected, optional = expected_shapes(kind, family, config)
    except (TypeError, ValueError) as e:  # UsageError too: the config's values are wrong, not the caller's
        raise MocohdError(f"{origin}: invalid {what}: {e}") from e
    except MocohdError as e:
        raise MocohdError(f"{origin}: {e}") from e
    missing = sorted(set(expected) - set(shapes) - optional)
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise MocohdError(f"{origin}: weights do not match the {what} ({detail})")
    for name in sorted(shapes):
        if tuple(int(x) for x in shapes[name]) != tuple(expected[name]):
            raise MocohdError(
                f"{origin}: weights do not match the {what}: {name} is {_shape(shapes[name])} "
                f"in the file, the config needs {_shape(expected[name])}"
            )


def load_weights(module: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str, origin) -> None:
    """``module.load_state_dict(tensors, strict=True)``, a mismatch refused in one line naming the
    ``what`` config (the shapes were checked before: this is the last guard)."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise MocohdError(
            f"{origin}: weights do not match the {what} config: {str(e).splitlines()[-1].strip()[:200]}"
        ) from e
