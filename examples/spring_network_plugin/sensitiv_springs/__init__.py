"""sensitiv-springs: an example third-party sensitiv plugin (a harmonic spring network)."""

from .model import OPTIONS_SCHEMA, PARAMETERS, spring_network

__version__ = "0.1.0"

__all__ = ["spring_network", "PARAMETERS", "OPTIONS_SCHEMA", "__version__"]
