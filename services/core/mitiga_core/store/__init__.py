"""Model store: the interface and its filesystem implementation."""

from mitiga_core.store.base import ModelStore
from mitiga_core.store.filesystem import FilesystemModelStore, check_model_name, existing_model_name, is_model_name

__all__ = ["FilesystemModelStore", "ModelStore", "check_model_name", "existing_model_name", "is_model_name"]
