"""The plugin host: discovers plugins, checks what they contribute, and files it by name.

The package holds the registry (`Registry`, `get_registry`, and the one lookup that says
which reader reads a file, `Registry.find_structure_reader`), the kinds of contribution
(`KINDS`), the record checks, and sensitiv's own built-in plugin (`builtin`, with the
AMBER NetCDF reader). It imports neither jax nor the numerical core, so commands that only
need the host (`sensitiv plugins`, `validate`, `schema`) start fast; a plugin's
registration module should stay as light (see docs/plugins.md).

Plugins are found through the entry-point group `sensitiv` (pluggy's
`load_setuptools_entrypoints`); sensitiv's own contributions (`sensitiv.plugins.builtin`) come
in through exactly that path. Each plugin is admitted whole or not at all:

- an implementation of an unknown (misspelled) hook, or an unmarked `sensitiv_*`
  function, is refused with a `PluginError` naming the plugin;
- every record a hook returns is checked (type, callable, options schema, parameters);
- a name contributed twice (by two plugins, or twice by one) is a `PluginError` naming
  both plugins.

Environment variables:

- `SENSITIV_DISABLE_PLUGIN_AUTOLOAD=1`: load no entry point (not even `builtin`) unless
  `SENSITIV_PLUGINS` names it. `0`, `false`, `no`, `off` and the empty string leave
  autoload on.
- `SENSITIV_PLUGINS=builtin,jaxmd`: load exactly these entry points (comma-separated
  entry-point names, as `sensitiv plugins` lists them), whatever the other variable says.

**Example:**

```python
from sensitiv.plugins import get_registry

registry = get_registry()
model = registry.get_energy_model("soft_sphere")
reader = registry.find_structure_reader("relaxed.extxyz")
```
"""

from __future__ import annotations

from ._kinds import KINDS, Kind
from ._registry import (
    ENTRY_POINT_GROUP,
    ENV_DISABLE_AUTOLOAD,
    ENV_PLUGINS,
    PluginInfo,
    Registry,
    get_registry,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_DISABLE_AUTOLOAD",
    "ENV_PLUGINS",
    "KINDS",
    "Kind",
    "PluginInfo",
    "Registry",
    "get_registry",
]
