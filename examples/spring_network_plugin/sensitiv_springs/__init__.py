"""sensitiv-springs: an example third-party sensitiv plugin (a harmonic spring network)."""

from .model import ENERGY_MODEL, spring_network

__version__ = "0.1.0"

__all__ = ["ENERGY_MODEL", "spring_network", "__version__"]
