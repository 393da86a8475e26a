"""sensitiv: exact sensitivities of equilibrium and optimization problems.

The public API is re-exported here; modules starting with an underscore are private.
"""

from . import errors, records

__version__ = "0.1.0"

__all__ = ["errors", "records", "__version__"]
