"""A separate script, as a user's own training code would be: saves a plain ``.keras`` file and the
predictions Keras itself gives for fixed inputs (a regressor, and a 3-class softmax classifier). Usage: ``python make_plain_model.py OUT_DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np


def main(out: Path) -> None:
    keras.utils.set_random_seed(7)
    inputs = keras.Input(shape=(3,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.save(out / "plain.keras")
    x = np.random.default_rng(7).normal(size=(5, 3)).astype(np.float32)
    np.savez(out / "expected.npz", x=x, y=model.predict(x, verbose=0))
    classifier = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))  # a 3-class softmax
    classifier.save(out / "classifier.keras")
    np.savez(out / "expected-classifier.npz", x=x, y=classifier.predict(x, verbose=0))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
