"""Image encoders: an image -> the w's that make it with a frozen generator (``image_encoder``)."""

from .image_encoder import FAMILY, SPACES, EncoderConfig, ImageEncoder

__all__ = ["FAMILY", "SPACES", "EncoderConfig", "ImageEncoder"]
