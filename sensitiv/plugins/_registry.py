"""The plugin registry: discovers plugins, admits each whole or not at all, files records by name.

See the package docstring (`sensitiv.plugins`) for discovery, admission rules and the
environment variables.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import inspect
import logging
import os
import sys
import threading
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pluggy

from .. import __version__, hookspecs
from ..errors import PluginError
from ..records import EnergyModel, StructureReader
from ._checks import check_record, one_line
from ._kinds import KINDS, Kind, kind_of

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_DISABLE_AUTOLOAD",
    "ENV_PLUGINS",
    "PluginInfo",
    "Registry",
    "get_registry",
]

ENTRY_POINT_GROUP = hookspecs.ENTRY_POINT_GROUP
ENV_DISABLE_AUTOLOAD = "SENSITIV_DISABLE_PLUGIN_AUTOLOAD"
ENV_PLUGINS = "SENSITIV_PLUGINS"
#: Entry points of the plugins shipped with sensitiv, loaded before any other.
FIRST_PARTY = ("builtin", "jaxmd", "ase")

_FALSE_WORDS = ("", "0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """What the host knows about one admitted plugin.

    **Arguments:**

    - `name`: the registered name: the entry-point name, or the name given to `register`.
    - `module`: the module (or object type) implementing the hooks.
    - `distribution`, `version`: the installed distribution providing it, when known.
    - `entry_point`: the entry point's value (`"sensitiv.plugins.builtin"`), or `None` for a
      plugin registered from code.
    - `hooks`: the hooks it implements.
    - `contributions`: hook name → the names of the records it contributed.

    **Example:**

    ```python
    info = sensitiv.plugins.get_registry().plugin_info("jaxmd")
    info.distribution, info.version           # ('sensitiv-jaxmd', '0.1.0')
    info.contributions["sensitiv_equilibrium_solvers"]   # ('fire', 'gradient_descent')
    ```
    """

    name: str
    module: str
    distribution: str | None
    version: str | None
    entry_point: str | None
    hooks: tuple[str, ...]
    contributions: Mapping[str, tuple[str, ...]]

    def describe(self) -> str:
        """`name version (distribution)`, for messages."""
        text = self.name
        if self.distribution:
            text += f" ({self.distribution} {self.version or 'unknown version'})"
        elif self.version:
            text += f" {self.version}"
        return text


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _parse_selection(value: str | None) -> list[str] | None:
    if value is None or not value.strip():
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _autoload_disabled(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in _FALSE_WORDS


class _Manager(pluggy.PluginManager):
    """A pluggy manager that also notices `sensitiv_*` functions lacking `@hookimpl`.

    Such a function would otherwise be ignored silently and its plugin would
    contribute nothing, the commonest plugin-writing mistake.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.unmarked: list[str] = []

    def parse_hookimpl_opts(self, plugin, name):
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(hookspecs.PROJECT_NAME + "_"):
            if inspect.isroutine(getattr(plugin, name, None)):
                self.unmarked.append(name)
        return opts


class Registry:
    """The installed plugins and every record they contribute, by kind and name.

    **Arguments:**

    - `entry_points`: which entry points of the group `sensitiv` to load: `None` (the
      default) decides from the environment (`SENSITIV_PLUGINS`,
      `SENSITIV_DISABLE_PLUGIN_AUTOLOAD`; all of them when neither is set), `True` all,
      `False` none (an empty registry for tests and notebooks), or a list of
      entry-point names to load exactly those.
    - `strict`: raise on the first broken plugin (the default). With `strict=False` a
      broken plugin is left out and its one-line error is kept in `errors`, which is
      what `sensitiv plugins` uses to list what is installed even when a plugin is broken.

    **Raises:** `PluginError` naming the plugin when one is broken (see the module
    docstring), and for a selected entry-point name that is not installed.

    The mappings `energy_models`, `equilibrium_solvers`, `optimality_conditions` and
    `structure_readers` are read-only views (name → record); `get_energy_model(name)`
    and its siblings raise a one-line `PluginError` with close matches for unknown names.

    **Example:**

    ```python
    registry = sensitiv.plugins.Registry(entry_points=False)
    registry.register(my_plugin_module, name="mine")
    registry.get_energy_model("harmonic_springs").factory(structure, {"cutoff": 1.5})
    ```
    """

    def __init__(
        self, entry_points: bool | Sequence[str] | None = None, *, strict: bool = True
    ) -> None:
        self._pm = _Manager()
        self.strict = strict
        #: `(plugin or entry-point name, message)` of each plugin left out (`strict=False`).
        self.errors: list[tuple[str, str]] = []
        self._pm.add_hookspecs(hookspecs)
        self._tables: dict[str, dict[str, Any]] = {k.kind: {} for k in KINDS}
        self._owners: dict[str, dict[str, str]] = {k.kind: {} for k in KINDS}
        self._infos: dict[str, PluginInfo] = {}
        self._selection_source = "entry_points argument"
        if entry_points is None:
            selected = _parse_selection(os.environ.get(ENV_PLUGINS))
            if selected is not None:
                self._selection_source = ENV_PLUGINS
                entry_points = selected
            else:
                entry_points = not _autoload_disabled(os.environ.get(ENV_DISABLE_AUTOLOAD))
        if isinstance(entry_points, str):
            entry_points = _parse_selection(entry_points) or []
        #: Whether every entry point was loaded (`False` when disabled or selected).
        self.autoload: bool = entry_points is True
        #: The entry-point names selected, or `None` when all (or none) were loaded.
        self.selection: tuple[str, ...] | None = (
            None if isinstance(entry_points, bool) else tuple(entry_points)
        )
        if entry_points is True:
            self.load_entry_points()
        elif entry_points is not False:
            self.load_entry_points(entry_points)

    # -- loading -----------------------------------------------------------------------

    @staticmethod
    def available_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
        """The installed entry points of the group `sensitiv`, by name.

        **Raises:** `PluginError` when two distributions declare the same entry-point
        name differently (only one of them could ever be loaded).
        """
        found: dict[str, importlib.metadata.EntryPoint] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            other = found.get(ep.name)
            if other is not None and other.value != ep.value:
                raise PluginError(
                    f"entry point {ep.name!r} of group {ENTRY_POINT_GROUP!r} is declared by "
                    f"two distributions: {_dist_name(other)} ({other.value}) and "
                    f"{_dist_name(ep)} ({ep.value}); uninstall one of them"
                )
            found.setdefault(ep.name, ep)
        return found

    def load_entry_points(self, names: Iterable[str] | None = None) -> list[str]:
        """Load and admit plugins from the entry-point group `sensitiv`.

        **Arguments:**

        - `names`: entry-point names to load; all installed ones when `None`. Names
          already registered are skipped.

        **Returns:** the names of the plugins loaded by this call.

        **Raises:** `PluginError` for an unknown name (with close matches), a plugin that
        fails to import, or a broken plugin (which is then left unregistered).
        """
        available = self.available_entry_points()
        if names is None:
            # First-party plugins first, so that a clash names (and leaves out) the
            # third-party plugin, never the plugins sensitiv ships.
            names = sorted(available, key=lambda n: (
                FIRST_PARTY.index(n) if n in FIRST_PARTY else len(FIRST_PARTY), n))
        else:
            names = list(dict.fromkeys(names))
        loaded = []
        for name in names:
            if name in self._infos:
                continue
            try:
                if self._load_entry_point(name, available):
                    loaded.append(name)
            except PluginError as err:
                if self.strict:
                    raise
                self.errors.append((name, str(err)))
        return loaded

    def _load_entry_point(self, name: str, available: Mapping[str, Any]) -> bool:
        if name not in available:
            known = ", ".join(sorted(available)) or "none"
            raise PluginError(
                f"{self._selection_source}: no plugin entry point named {name!r}"
                f"{_suggest(name, available)}; installed: {known}"
            )
        ep = available[name]
        before = len(self._pm.list_plugin_distinfo())
        self._pm.unmarked.clear()
        try:
            self._pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
        except pluggy.PluginValidationError as err:
            self._discard(name)
            raise PluginError(
                f"plugin {name!r} ({ep.value}, from {_dist_name(ep)}) is invalid: "
                f"{one_line(err)}"
            ) from err
        except Exception as err:
            self._discard(name)
            raise PluginError(
                f"plugin {name!r} ({ep.value}, from {_dist_name(ep)}) failed to load: "
                f"{type(err).__name__}: {one_line(err)}"
            ) from err
        plugin = self._pm.get_plugin(name)
        if plugin is None:  # blocked by pluggy: nothing to admit
            return False
        distribution, version = _dist_name(ep), _dist_version(ep)
        for obj, dist in self._pm.list_plugin_distinfo()[before:]:
            if obj is plugin:
                distribution, version = dist.project_name, dist.version
        self._admit(name, plugin, distribution, version, ep.value)
        return True

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register a plugin from code (tests, notebooks), with the same checks.

        **Arguments:**

        - `plugin`: a module, class or object with `@hookimpl` functions.
        - `name`: its name in messages and in `sensitiv plugins`; default: the module's
          `__name__`, or the object's class name.

        **Returns:** the name it was registered under.

        **Raises:** `PluginError` when the name is taken, when the plugin implements an
        unknown hook, or when its records are invalid or clash with registered ones (the
        plugin is then left unregistered).

        **Example:**

        ```python
        class MyPlugin:
            @hookimpl
            def sensitiv_energy_models(self):
                return [EnergyModel(name="mine", factory=build)]

        registry.register(MyPlugin(), name="mine")
        ```
        """
        if name is None:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in self._infos or self._pm.get_plugin(name) is not None:
            raise PluginError(f"a plugin named {name!r} is already registered")
        if self._pm.is_registered(plugin):
            other = self._pm.get_name(plugin)
            raise PluginError(f"plugin {name!r} is already registered as {other!r}")
        self._pm.unmarked.clear()
        try:
            self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as err:
            self._discard(name)
            raise PluginError(f"plugin {name!r} is invalid: {one_line(err)}") from err
        distribution, version = None, None
        top = (getattr(plugin, "__name__", None) or type(plugin).__module__).split(".")[0]
        version = getattr(sys.modules.get(top), "__version__", None)
        self._admit(name, plugin, distribution, version, None)
        return name

    def unregister(self, name: str) -> Any:
        """Remove the plugin registered as `name` and everything it contributed.

        **Returns:** the plugin object.
        """
        if name not in self._infos:
            raise PluginError(
                f"no plugin named {name!r} is registered{_suggest(name, self._infos)}; "
                f"registered: {', '.join(self._infos) or 'none'}"
            )
        plugin = self._pm.get_plugin(name)
        self._discard(name)
        del self._infos[name]
        for kind in KINDS:
            owners = self._owners[kind.kind]
            for record_name in [n for n, owner in owners.items() if owner == name]:
                del owners[record_name]
                del self._tables[kind.kind][record_name]
        return plugin

    def _discard(self, name: str) -> None:
        if self._pm.get_plugin(name) is not None:
            self._pm.unregister(name=name)

    def _admit(self, name, plugin, distribution, version, entry_point) -> None:
        """Check a freshly registered plugin and file its records; unregister it on failure."""
        try:
            self._check_hooks(name, plugin)
            collected = {kind.kind: self._collect(name, kind) for kind in KINDS}
            self._check_names(name, collected)
        except BaseException:
            self._discard(name)
            raise
        hooks = tuple(
            k.hook for k in KINDS
            if any(impl.plugin_name == name for impl in getattr(self._pm.hook, k.hook).get_hookimpls())
        )
        for kind in KINDS:
            for record in collected[kind.kind]:
                self._tables[kind.kind][record.name] = record
                self._owners[kind.kind][record.name] = name
        module = getattr(plugin, "__name__", None) or f"{type(plugin).__module__}.{type(plugin).__qualname__}"
        self._infos[name] = PluginInfo(
            name=name,
            module=module,
            distribution=distribution,
            version=version,
            entry_point=entry_point,
            hooks=hooks,
            contributions=types.MappingProxyType(
                {k.hook: tuple(r.name for r in collected[k.kind]) for k in KINDS if k.hook in hooks}
            ),
        )

    def _check_hooks(self, name: str, plugin: Any) -> None:
        known = [k.hook for k in KINDS]
        if self._pm.unmarked:
            function = self._pm.unmarked[0]
            hint = (
                f"mark it with @sensitiv.hookspecs.hookimpl"
                if function in known
                else f"it matches no hook{_suggest(function, known)}; hooks: {', '.join(known)}"
            )
            raise PluginError(
                f"plugin {name!r}: function {function!r} looks like a hook implementation "
                f"but is not marked with @hookimpl; {hint}"
            )
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as err:
            unknown = [
                caller.name
                for caller in self._pm.get_hookcallers(plugin) or []
                if not caller.has_spec()
                and any(not impl.optionalhook for impl in caller.get_hookimpls())
            ]
            if not unknown:  # another plugin's pending hook: cannot happen, all are checked
                raise PluginError(f"plugin {name!r}: {one_line(err)}") from err
            hook = unknown[0]
            raise PluginError(
                f"plugin {name!r} implements unknown hook {hook!r}{_suggest(hook, known)}; "
                f"known hooks: {', '.join(known)}"
            ) from err

    def _collect(self, name: str, kind: Kind) -> list[Any]:
        records: list[Any] = []
        caller = getattr(self._pm.hook, kind.hook)
        for impl in caller.get_hookimpls():
            if impl.plugin_name != name:
                continue
            where = f"plugin {name!r}: {kind.hook}()"
            try:
                result = impl.function()
            except PluginError:
                raise
            except Exception as err:
                raise PluginError(f"{where} raised {type(err).__name__}: {one_line(err)}") from err
            if result is None:
                continue
            if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
                raise PluginError(
                    f"{where} returned {type(result).__name__}; expected a list of "
                    f"{kind.record_type.__name__} records"
                )
            for record in result:
                check_record(where, kind, record)
                records.append(record)
        return records

    def _check_names(self, name: str, collected: Mapping[str, list]) -> None:
        for kind in KINDS:
            seen: set[str] = set()
            for record in collected[kind.kind]:
                if record.name in seen:
                    raise PluginError(
                        f"plugin {name!r} contributes {kind.label} {record.name!r} twice"
                    )
                seen.add(record.name)
                owner = self._owners[kind.kind].get(record.name)
                if owner is not None:
                    first = self._infos[owner].describe()
                    raise PluginError(
                        f"{kind.label} {record.name!r} is contributed by two plugins: "
                        f"{first} and {name!r}; uninstall one, or load only one with "
                        f"{ENV_PLUGINS}=name1,name2"
                    )

    # -- lookups -----------------------------------------------------------------------

    @property
    def energy_models(self) -> Mapping[str, EnergyModel]:
        """Energy model name → `EnergyModel` (read-only)."""
        return types.MappingProxyType(self._tables["energy_model"])

    @property
    def equilibrium_solvers(self) -> Mapping[str, EquilibriumSolver]:
        """Equilibrium solver name → `EquilibriumSolver` (read-only)."""
        return types.MappingProxyType(self._tables["equilibrium_solver"])

    @property
    def optimality_conditions(self) -> Mapping[str, OptimalityCondition]:
        """Optimality condition name → `OptimalityCondition` (read-only)."""
        return types.MappingProxyType(self._tables["optimality_condition"])

    @property
    def structure_readers(self) -> Mapping[str, StructureReader]:
        """Structure reader (format) name → `StructureReader` (read-only)."""
        return types.MappingProxyType(self._tables["structure_reader"])

    def records(self, kind: str) -> Mapping[str, Any]:
        """Name → record for one kind (`"energy_model"`, or its hook or attribute name)."""
        return types.MappingProxyType(self._tables[kind_of(kind).kind])

    def get(self, kind: str, name: str) -> Any:
        """The record of `kind` named `name`.

        **Raises:** a one-line `PluginError` listing the known names of that kind and the
        closest matches, e.g. `unknown energy model 'sof_sphere' (did you mean
        'soft_sphere'?); known energy models: lennard_jones, soft_sphere`.
        """
        k = kind_of(kind)
        table = self._tables[k.kind]
        if name in table:
            return table[name]
        if table:
            raise PluginError(
                f"unknown {k.label} {name!r}{_suggest(str(name), table)}; "
                f"known {k.plural}: {', '.join(sorted(table))}{self._broken_note()}"
            )
        raise PluginError(
            f"unknown {k.label} {name!r}: no installed plugin contributes {k.plural} "
            f"(plugins: {', '.join(self._infos) or 'none'}{self._loading_note()}){self._broken_note()}; "
            f"see `sensitiv plugins`"
        )

    def get_energy_model(self, name: str) -> EnergyModel:
        """The `EnergyModel` named `name` (see `get` for the error on unknown names)."""
        return self.get("energy_model", name)

    def get_equilibrium_solver(self, name: str) -> EquilibriumSolver:
        """The `EquilibriumSolver` named `name`."""
        return self.get("equilibrium_solver", name)

    def get_optimality_condition(self, name: str) -> OptimalityCondition:
        """The `OptimalityCondition` named `name`."""
        return self.get("optimality_condition", name)

    def get_structure_reader(self, name: str) -> StructureReader:
        """The `StructureReader` named `name` (a format name)."""
        return self.get("structure_reader", name)

    def find_structure_reader(self, path: str | os.PathLike) -> StructureReader:
        """The reader claiming the longest file-name ending of `path` (case-insensitive).

        This is the one place that decides which reader reads a file: the config resolves
        each structure file's reader with it, once, and records the answer.

        **Arguments:**

        - `path`: a file path; only its base name is looked at.

        **Returns:** the `StructureReader`.

        **Raises:** `PluginError` when no reader claims the ending (listing those that
        are claimed), or when two readers claim the same longest ending (naming both, so
        the config can choose one with `structure.format`).

        **Example:**

        ```python
        registry.find_structure_reader("run/traj.nc").name   # 'amber-netcdf'
        ```
        """
        base = os.path.basename(os.fspath(path)).lower()
        best: list[StructureReader] = []
        best_len = -1
        for reader in self._tables["structure_reader"].values():
            lengths = [len(e) for e in reader.extensions if base.endswith(e.lower())]
            if not lengths:
                continue
            length = max(lengths)
            if length > best_len:
                best, best_len = [reader], length
            elif length == best_len:
                best.append(reader)
        if len(best) == 1:
            return best[0]
        if best:
            names = " and ".join(
                f"{r.name!r} ({self._owners['structure_reader'][r.name]})"
                for r in sorted(best, key=lambda r: r.name)
            )
            raise PluginError(
                f"{os.fspath(path)}: cannot tell the format from the file name: its ending is "
                f"claimed by readers {names}; choose one with structure.format"
            )
        claimed = sorted({e for r in self._tables["structure_reader"].values() for e in r.extensions})
        raise PluginError(
            f"{os.fspath(path)}: cannot tell the format from the file name: no structure reader "
            f"claims its ending; claimed endings: {', '.join(claimed) or 'none'}"
            f"{self._loading_note()}; set structure.format"
        )

    def owner(self, kind: str, name: str) -> str:
        """The name of the plugin that contributed the record `name` of `kind`."""
        self.get(kind, name)
        return self._owners[kind_of(kind).kind][name]

    # -- plugins -----------------------------------------------------------------------

    @property
    def plugins(self) -> tuple[PluginInfo, ...]:
        """Every admitted plugin, in registration order."""
        return tuple(self._infos.values())

    def plugin_info(self, name: str) -> PluginInfo:
        """The `PluginInfo` of the plugin registered as `name`."""
        if name not in self._infos:
            raise PluginError(
                f"no plugin named {name!r}{_suggest(name, self._infos)}; "
                f"registered: {', '.join(self._infos) or 'none'}"
            )
        return self._infos[name]

    def versions(self) -> dict[str, str]:
        """Plugin name → version of the distribution providing it (`"unknown"` if none)."""
        return {info.name: info.version or "unknown" for info in self._infos.values()}

    @property
    def hook(self):
        """pluggy's hook relay, for calling a hook across all plugins directly."""
        return self._pm.hook

    def _broken_note(self) -> str:
        if not self.errors:
            return ""
        return (f" (left out, failed to load: {', '.join(name for name, _ in self.errors)}; "
                f"`sensitiv plugins` says why)")

    def _loading_note(self) -> str:
        if self.selection is not None:
            return f"; only {', '.join(self.selection) or 'no plugins'} selected"
        if not self.autoload:
            return f"; plugin autoload is off ({ENV_DISABLE_AUTOLOAD})"
        return ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of every plugin and its contributions.

        **Returns:** `{"sensitiv_version", "autoload", "selection", "plugins": [...]}`;
        each plugin has `name`, `module`, `distribution`, `version`, `entry_point`,
        `hooks`, and `contributions` (hook name → list of `{name, description, ...}`
        with the parameters of energy models and the endings of readers).
        """
        plugins = []
        for info in self._infos.values():
            contributions = {}
            for kind in KINDS:
                if kind.hook not in info.hooks:
                    continue
                contributions[kind.hook] = [
                    _record_dict(self._tables[kind.kind][record_name])
                    for record_name in info.contributions[kind.hook]
                ]
            plugins.append(
                {
                    "name": info.name,
                    "module": info.module,
                    "distribution": info.distribution,
                    "version": info.version,
                    "entry_point": info.entry_point,
                    "hooks": list(info.hooks),
                    "contributions": contributions,
                }
            )
        return {
            "sensitiv_version": __version__,
            "autoload": self.autoload,
            "selection": None if self.selection is None else list(self.selection),
            "plugins": plugins,
        }

    def __repr__(self) -> str:
        return f"Registry(plugins={list(self._infos)})"


def _record_dict(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": record.name, "description": record.description}
    if isinstance(record, EnergyModel):
        out["parameters"] = [
            {
                "name": p.name,
                "shape": list(p.shape),
                "units": p.units,
                "default": _plain(p.default),
                "differentiable": bool(p.differentiable),
                "description": p.description,
            }
            for p in record.parameters
        ]
    if isinstance(record, StructureReader):
        out["extensions"] = list(record.extensions)
    out["options"] = sorted(record.options_schema.get("properties", {}))
    return out


def _plain(value: Any) -> Any:
    """A JSON-ready version of a parameter default (arrays become nested lists)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "an unknown distribution"


def _dist_version(ep: importlib.metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else None


# -- the default registry --------------------------------------------------------------

_default: Registry | None = None
_default_lock = threading.Lock()


def get_registry(refresh: bool = False) -> Registry:
    """The registry of the installed plugins, built on first use and cached.

    **Arguments:**

    - `refresh`: discard the cached registry and discover the plugins again (after
      installing one, or changing `SENSITIV_PLUGINS`).

    **Returns:** the shared `Registry`. For an independent one, call `Registry()`.

    **Example:**

    ```python
    sensitiv.plugins.get_registry().get_equilibrium_solver("fire")
    ```
    """
    global _default
    with _default_lock:
        if _default is None or refresh:
            _default = None
            _default = _isolating_registry()
        return _default


_log = logging.getLogger("sensitiv.plugins")


def _isolating_registry() -> Registry:
    """Every installed plugin that loads; one that is broken is left out with a warning, so
    that it never blocks the others. Plugins chosen by name (`SENSITIV_PLUGINS`) must all
    load: the user asked for exactly those."""
    registry = Registry(strict=False)
    if registry.errors and registry.selection is not None:
        raise PluginError("; ".join(message for _, message in registry.errors))
    working = ",".join(registry._infos)
    for _, message in registry.errors:
        _log.warning(f"{message}; left out, the other plugins work (fix or uninstall it, or choose "
                     f"plugins: {ENV_PLUGINS}={working})")
    return registry
