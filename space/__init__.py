"""What can be searched: architecture specs, model builders, the catalog. Imports only torch (and yaml).

Only the builders import torch, and they load on first use: ``from space.errors import UserInputError``, a spec
or a search space costs no torch import, so ``nas --help`` and ``nas --version`` answer at once
(docs/architecture.md, "Startup").
"""

from typing import TYPE_CHECKING

from space.catalog import CATALOG, catalog_names, catalog_spec, resolve_spec
from space.errors import UserInputError
from space.spec import ArchSpec, MTNetSpec, ResNet3DSpec, SpecError, SRTGSpec, load_spec_file, spec_from_dict

if TYPE_CHECKING:
    from space.build import build_model, validate_buildable

_BUILDERS = ("build_model", "validate_buildable")  # in space.build, which imports torch


def __getattr__(name: str) -> object:
    """``space.build_model`` and ``space.validate_buildable``, imported when first asked for."""
    if name in _BUILDERS:
        from space import build

        return getattr(build, name)
    raise AttributeError(f"module 'space' has no attribute {name!r}")


__all__ = [
    "ArchSpec",
    "CATALOG",
    "MTNetSpec",
    "ResNet3DSpec",
    "SRTGSpec",
    "SpecError",
    "UserInputError",
    "build_model",
    "catalog_names",
    "catalog_spec",
    "load_spec_file",
    "resolve_spec",
    "spec_from_dict",
    "validate_buildable",
]
