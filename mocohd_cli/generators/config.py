"""What every generator config dataclass shares: a checked dict round trip."""

from __future__ import annotations

from dataclasses import asdict, fields


class DictConfig:
    """Mixin for config dataclasses: ``from_dict`` refuses unknown keys, ``to_dict`` is ``asdict``."""

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)
