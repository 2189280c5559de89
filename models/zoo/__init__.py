"""The model zoo: one module per architecture. Importing this package imports every module in it, which
runs their `@register_model` decorators, so adding a model is adding one file here."""
import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
