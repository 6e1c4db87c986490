"""The research architectures and their training on the vendored data."""

from mitiga_research.modelzoo.architectures import build_lstm, build_regressor, build_rnn, build_transformer

__all__ = ["build_lstm", "build_regressor", "build_rnn", "build_transformer"]
