"""The drift-detector service: tests live windows against the training reference and decides when to retrain."""
