"""The development stack: real Kafka, Redis, Prometheus and Alertmanager processes on 127.0.0.1, started by the
project's own scripts, for ``make up`` and the integration tests."""
