"""The inference service: Open Inference Protocol v2 over REST, micro-batched, hot-swappable."""

from mitiga_inference.app import create_app

__all__ = ["create_app"]
