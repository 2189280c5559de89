"""Model zoo and registry: `list_models`, `create_model`, `create_detector`."""
from models.registry import (ModelEntry, create_detector, create_model, detector_class, get_entry, list_models,
                             register_model, uses_labels)

__all__ = ["ModelEntry", "create_detector", "create_model", "detector_class", "get_entry", "list_models", "register_model",
           "uses_labels"]
