"""The research architectures, built only from stock Keras layers so they load with ``safe_mode=True``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import keras
from keras import layers

if TYPE_CHECKING:
    from collections.abc import Callable


def build_lstm(window: int = 50) -> keras.Model:
    """LSTM(50, return_sequences) → LSTM(50) → Dense(25) → Dense(1)."""
    inputs = keras.Input(shape=(window, 1), name="window")
    x = layers.LSTM(50, return_sequences=True)(inputs)
    x = layers.LSTM(50)(x)
    x = layers.Dense(25)(x)
    return keras.Model(inputs, layers.Dense(1)(x), name="lstm")


def build_rnn(window: int = 50) -> keras.Model:
    """Four SimpleRNN(50) layers with dropout → Dense(1)."""
    inputs = keras.Input(shape=(window, 1), name="window")
    x = inputs
    for i in range(4):
        x = layers.SimpleRNN(50, activation="tanh", return_sequences=i < 3)(x)
        x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, layers.Dense(1)(x), name="rnn")


def _encoder_block(x: keras.KerasTensor, head_size: int, heads: int, ff_dim: int, dropout: float) -> keras.KerasTensor:
    attn = layers.LayerNormalization(epsilon=1e-6)(x)
    attn = layers.MultiHeadAttention(key_dim=head_size, num_heads=heads, dropout=dropout)(attn, attn)
    attn = layers.Dropout(dropout)(attn)
    x = layers.Add()([x, attn])
    ff = layers.LayerNormalization(epsilon=1e-6)(x)
    ff = layers.Conv1D(filters=ff_dim, kernel_size=1, activation="relu")(ff)
    ff = layers.Dropout(dropout)(ff)
    ff = layers.Conv1D(filters=x.shape[-1], kernel_size=1)(ff)
    return layers.Add()([x, ff])


def build_transformer(window: int = 5, blocks: int = 4, head_size: int = 64, heads: int = 4) -> keras.Model:
    """Four encoder blocks (LayerNorm → MultiHeadAttention → residual → Conv1D feed-forward),
    global average pooling, Dense(256) → Dense(1)."""
    inputs = keras.Input(shape=(window, 1), name="window")
    x = inputs
    for _ in range(blocks):
        x = _encoder_block(x, head_size, heads, ff_dim=4, dropout=0.1)
    x = layers.GlobalAveragePooling1D(data_format="channels_first")(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    return keras.Model(inputs, layers.Dense(1)(x), name="transformer")


def build_regressor(n_features: int) -> keras.Model:
    """A small dense regressor for tabular inputs (CO(GT) from the Air Quality sensors)."""
    inputs = keras.Input(shape=(n_features,), name="features")
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(1)(x), name="regressor")


def build_classifier(n_features: int, classes: int) -> keras.Model:
    """A small dense classifier: softmax over ``classes`` (a sigmoid unit for two)."""
    inputs = keras.Input(shape=(n_features,), name="features")
    x = layers.Dense(32, activation="relu")(inputs)
    x = layers.Dense(16, activation="relu")(x)
    out = layers.Dense(1, activation="sigmoid")(x) if classes == 2 else layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, out, name="classifier")


def build_two_input(inputs: dict[str, int]) -> keras.Model:
    """A dense regressor over several named inputs (e.g. the sensors and the weather), concatenated."""
    named = {name: keras.Input(shape=(width,), name=name) for name, width in inputs.items()}
    x = layers.Concatenate()(list(named.values()))
    x = layers.Dense(32, activation="relu")(x)
    return keras.Model(list(named.values()), layers.Dense(1)(x), name="two_input")


FORECASTERS: Final[dict[str, tuple[Callable[[int], keras.Model], int]]] = {
    "lstm": (build_lstm, 50),
    "rnn": (build_rnn, 50),
    "transformer": (build_transformer, 5),
}
"""Forecast architectures with their default window."""
