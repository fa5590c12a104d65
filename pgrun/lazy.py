"""Modules loaded on first use, so that `pgrun --help` and config errors never import torch.

The algorithm modules hold both their config schema (which Hydra needs to compose any
config) and their update rule (which needs torch); they name torch and the tensor modules
through `lazy_import`, which executes a module at its first attribute access.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """The module `name`, executed when one of its attributes is first read (at once if it
    is already imported)."""
    if name in sys.modules:
        return sys.modules[name]
    # A submodule's packages are imported for real, each on its own: a lazy package executed
    # from inside the import of one of its submodules gets that submodule made twice, and the
    # second copy lacks the attributes the first import set on it (seen: torch executed by
    # lazy_import("torch.utils.tensorboard") left torch.utils without backend_registration).
    parts = name.split(".")
    for depth in range(1, len(parts)):
        package = ".".join(parts[:depth])
        if package in sys.modules:
            sys.modules[package].__dict__  # noqa: B018 - reading it executes a lazy module, now
        else:
            importlib.import_module(package)
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
