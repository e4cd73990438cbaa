"""ImageNet classes by number or name, and the class vectors of a class-conditional
generator (BigGAN): ``--class 207``, ``--class golden_retriever``.

    k = parse_class("golden_retriever", 1000)         # 207
    c = one_hot([k, 3], 1000)                          # [2, 1000] float

The names (index = label) are package data: ``mocohd_cli/data/imagenet_classes.txt``,
read as a file of the ``mocohd_cli`` package (no module of ``mocohd_cli.data`` is imported).
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib.resources import files

import torch
import torch.nn.functional as F

from .errors import MocohdError

CLASS_FILE = ("data", "imagenet_classes.txt")  # inside the mocohd_cli package


def one_hot(classes, num_classes: int, device=None) -> torch.Tensor:
    """[len(classes), num_classes] float one-hot rows."""
    idx = torch.as_tensor(list(classes), dtype=torch.long)
    return F.one_hot(idx, num_classes).float().to(device)


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names, index = label (mocohd_cli/data/imagenet_classes.txt); read once."""
    folder, name = CLASS_FILE
    text = (files("mocohd_cli") / folder / name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _norm(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def parse_class(value: str | int, num_classes: int) -> int:
    """A class label from a number or an ImageNet class name (case, '_' and '-' ignored)."""
    s = str(value).strip()
    if s.lstrip("-").isdigit():
        k = int(s)
        if not 0 <= k < num_classes:
            raise MocohdError(f"class {k} is out of range: this generator has classes 0..{num_classes - 1}")
        return k
    names = class_names()
    if num_classes != len(names):
        raise MocohdError(f"class names are ImageNet's 1000; this generator has {num_classes} classes: give a number")
    wanted = _norm(s)
    exact = [k for k, n in enumerate(names) if _norm(n) == wanted]
    if exact:
        return exact[0]
    partial = [k for k, n in enumerate(names) if wanted in _norm(n)]
    if len(partial) == 1:
        return partial[0]
    if partial:
        shown = ", ".join(f"{k} {names[k]}" for k in partial[:6])
        raise MocohdError(f"class {s!r} is ambiguous: {shown}{', ...' if len(partial) > 6 else ''}")
    close = difflib.get_close_matches(wanted, [_norm(n) for n in names], n=3, cutoff=0.7)
    hint = f" (did you mean {', '.join(repr(c.replace(' ', '_')) for c in close)}?)" if close else ""
    raise MocohdError(f"unknown class {s!r}{hint}; give an ImageNet class number 0..999 or name")


def parse_classes(values, num_classes: int) -> list[int]:
    """Labels from a list of numbers/names, each item possibly comma-separated."""
    out = []
    for v in values or []:
        out += [parse_class(p, num_classes) for p in str(v).split(",") if p.strip()]
    return out


def describe_class(k: int, num_classes: int) -> str:
    """'207 golden retriever' for ImageNet's 1000 classes, else '207'."""
    names = class_names() if num_classes == 1000 else []
    return f"{k} {names[k]}" if names else str(k)
