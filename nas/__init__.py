"""videonas: neural architecture search and benchmarking for temporal 3D-CNNs."""

__version__ = "0.1.0"
