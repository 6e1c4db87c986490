"""Model bundles: a Keras model with its manifest, reference sample and training data."""

from mitiga_core.bundle.io import (
    TrainingData,
    ValidationData,
    import_archive,
    load_keras,
    read_manifest,
    read_reference,
    read_training,
    read_validation,
    save_bundle,
)
from mitiga_core.bundle.manifest import Lineage, ModelInput, ModelManifest, Scaler, TrainingInfo

__all__ = [
    "Lineage",
    "ModelInput",
    "ModelManifest",
    "Scaler",
    "TrainingData",
    "TrainingInfo",
    "ValidationData",
    "import_archive",
    "load_keras",
    "read_manifest",
    "read_reference",
    "read_training",
    "read_validation",
    "save_bundle",
]
