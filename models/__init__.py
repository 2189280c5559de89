"""Model zoo and registry: `list_models`, `create_model`, `create_detector`."""
from models.registry import ModelEntry, create_detector, create_model, get_entry, list_models, register_model

__all__ = ["ModelEntry", "create_detector", "create_model", "get_entry", "list_models", "register_model"]
