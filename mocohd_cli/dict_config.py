"""What every network config dataclass shares (generators, motion, detectors, VGG16): a checked dict
round trip, and range checks for the values a config file can hold. A value that does not fit
raises ``UsageError`` (a ``ValueError`` too)."""

from __future__ import annotations

import math
from dataclasses import asdict, fields

from .errors import UsageError

# Upper bounds for sizes read from model files: far above any published model
# (StyleGAN2: z/w 512, 8 mapping layers, channel max 512; BigGAN-deep: 2048
# channels), low enough that a config cannot describe a module nobody could build.
MAX_DIM = 1 << 16  # latent, hidden and channel sizes
MAX_LAYERS = 64  # mapping layers, BigGAN blocks


def check_int(value, name: str, lo: int = 1, hi: int = MAX_DIM) -> int:
    """``value`` as an int in [lo, hi], else UsageError (booleans and floats are not sizes)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise UsageError(f"{name} must be in {lo}..{hi}, got {value}")
    return value


def check_real(value, name: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> float:
    """``value`` as a finite number in [lo, hi] ((lo, hi] with ``lo_open``), else UsageError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise UsageError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value}")
    if hi is not None and value > hi:
        raise UsageError(f"{name} must be <= {hi}, got {value}")
    return value


class DictConfig:
    """Mixin for config dataclasses: ``from_dict`` refuses unknown keys, ``to_dict`` is ``asdict``."""

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict):
            raise UsageError(f"a {cls.__name__} must be a JSON object")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise UsageError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)
