from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mitiga_research.datasets import load_prices
from mitiga_research.modelzoo import build_lstm, build_regressor, build_rnn, build_transformer
from mitiga_research.modelzoo.training import train_forecaster

pytestmark = pytest.mark.slow


def _kinds(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_architectures_follow_the_research() -> None:
    lstm = build_lstm(50)
    assert _kinds(lstm).count("LSTM") == 2 and [l.units for l in lstm.layers if type(l).__name__ == "Dense"] == [25, 1]
    assert lstm.layers[1].return_sequences is True and lstm.input_shape == (None, 50, 1)
    rnn = build_rnn(50)
    assert _kinds(rnn).count("SimpleRNN") == 4 and _kinds(rnn).count("Dropout") == 4
    tr = build_transformer(5)
    kinds = _kinds(tr)
    assert kinds.count("MultiHeadAttention") == 4 and kinds.count("Conv1D") == 8
    assert kinds.count("GlobalAveragePooling1D") == 1 and tr.input_shape == (None, 5, 1)
    assert [l.units for l in tr.layers if type(l).__name__ == "Dense"] == [256, 1]
    assert build_regressor(8).input_shape == (None, 8)


@pytest.mark.parametrize("arch", ["lstm", "rnn", "transformer"])
def test_forecasters_train_and_fit_the_scaler_on_training_data_only(arch: str) -> None:
    series = load_prices("amzn")["open"].loc["2002-01-01":"2002-12-31"]
    trained = train_forecaster(series, name=arch, arch=arch, epochs=1, val_fraction=0.2)
    m = trained.manifest
    window = m.window or 0
    n = len(series) - window
    train_end = n - int(n * 0.2)
    train_values = series.to_numpy()[: train_end + window]
    assert m.input_scaler.offset == pytest.approx([train_values.min()])
    assert m.input_scaler.scale == pytest.approx([train_values.max() - train_values.min()])
    assert series.to_numpy().max() > train_values.max()  # the validation part was left out of the fit
    assert {"val_mae", "val_rmse", "val_r2", "train_mae"} <= set(m.training.metrics)
    assert m.training.architecture == arch and trained.reference.shape == (train_end + window, 1)
    pred = trained.model(m.input_scaler.transform(trained.training.x[:4, :, None]), training=False)
    assert np.isfinite(np.asarray(pred)).all()


def test_too_little_data_is_a_clear_error() -> None:
    series = pd.Series(np.arange(20, dtype=np.float32), index=pd.date_range("2000-01-01", periods=20), name="open")
    with pytest.raises(ValueError, match="need more than 50 values"):
        train_forecaster(series, name="x", arch="lstm", epochs=1)


def test_saved_bundle_reads_back_without_pickle(tmp_path) -> None:
    from mitiga_core.bundle import read_manifest, read_reference, read_training, save_bundle
    from mitiga_core.store import FilesystemModelStore

    series = load_prices("amzn")["open"].loc["2003-01-01":"2003-06-30"]
    trained = train_forecaster(series, name="lstm", arch="lstm", window=10, epochs=1)
    store = FilesystemModelStore(tmp_path)
    manifest = save_bundle(store, trained.manifest, trained.model, trained.reference, trained.training,
                         trained.validation)
    folder = store.path("lstm", manifest.version)
    training = read_training(folder)
    assert training is not None and training.dates[0] == trained.training.dates[0]
    np.testing.assert_array_equal(training.x, trained.training.x)
    assert read_reference(folder).shape == trained.reference.shape
    assert read_manifest(folder).reference_rows == len(trained.reference)


def test_a_training_is_the_same_whatever_drew_random_numbers_before_it() -> None:
    """The seed is set before the model is built, not only before it is fitted: its initial weights do not depend
    on what ran earlier in the process (another test, another model), so a threshold a test checks is the model's."""
    import keras
    from mitiga_research.datasets import load_air_quality
    from mitiga_research.modelzoo.training import train_regressor

    frame = load_air_quality().loc["2004-03-10":"2004-03-20"]
    first = train_regressor(frame, name="air", epochs=1)
    keras.random.normal((3,)), keras.layers.Dense(4).build((None, 2))  # draws from the generators in between
    second = train_regressor(frame, name="air", epochs=1)
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
