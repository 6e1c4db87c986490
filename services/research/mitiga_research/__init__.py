"""The research behind mitiga, apart from the services: the model zoo (the thesis' LSTM/RNN/Transformer
forecasters and the air-quality regressor), the vendored datasets, and ``mitiga-train``. Used by the standalone
loop, the console, the CLI, the benchmarks and the tests; no deployable service's image needs it but the console's
(for its shipped series)."""
