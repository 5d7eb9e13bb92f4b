"""What can be searched: architecture specs, model builders, the catalog. Imports only torch (and yaml)."""

from space.build import build_model, validate_buildable
from space.catalog import CATALOG, catalog_names, catalog_spec, resolve_spec
from space.errors import UserInputError
from space.spec import ArchSpec, MTNetSpec, ResNet3DSpec, SpecError, SRTGSpec, load_spec_file, spec_from_dict

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
