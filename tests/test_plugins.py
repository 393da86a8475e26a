"""The plugin host: registration, checks, lookups, entry points and environment variables.

In-memory plugins are registered programmatically; entry-point behaviour uses the real
installed `builtin` entry point and small distributions written to a temporary folder
on `sys.path` (a `.dist-info` with `entry_points.txt`, found by `importlib.metadata`
exactly as an installed one).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sensitiv import plugins
from sensitiv.errors import ConfigError, InputError, PluginError
from sensitiv.hookspecs import hookimpl
from sensitiv.plugins import ENV_DISABLE_AUTOLOAD, ENV_PLUGINS, Registry, get_registry
from sensitiv.records import (
    EnergyModel,
    EquilibriumResult,
    EquilibriumSolver,
    OptimalityCondition,
    Parameter,
    Structure,
    StructureReader,
    System,
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    monkeypatch.delenv(ENV_PLUGINS, raising=False)
    monkeypatch.delenv(ENV_DISABLE_AUTOLOAD, raising=False)


def make_plugin(**hooks):
    """An in-memory plugin: each keyword is a hook name, its value the implementation."""
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


# -- real (small) contributions for each hook ---------------------------------------------


def quadratic_factory(structure: Structure, options) -> System:
    """E = ½ k |x − c|², c = `center` option (default: the structure's positions)."""
    center = jnp.asarray(options.get("center", structure.positions), dtype=float)
    values = dict(options.get("parameters", {}))
    params = {"k": jnp.asarray(values.get("k", 2.0), dtype=float)}

    def energy(positions, params):
        return 0.5 * params["k"] * jnp.sum((positions - center) ** 2)

    return System(
        energy=energy,
        params=params,
        parameters=(Parameter("k", (), "eV/angstrom^2", 2.0),),
        positions=jnp.asarray(structure.positions, dtype=float),
    )


QUADRATIC = EnergyModel(
    name="quadratic",
    factory=quadratic_factory,
    description="isotropic harmonic well",
    parameters=(Parameter("k", (), "eV/angstrom^2", 2.0, True, "well stiffness"),),
    options_schema={"type": "object", "properties": {"center": {"type": "number"}}},
)


def gradient_descent_factory(options):
    step, tol, steps = options.get("step", 0.25), options.get("tol", 1e-12), options.get("max_steps", 500)

    def solve(system: System, positions, params) -> EquilibriumResult:
        grad = jax.jit(jax.grad(system.energy))
        x = positions
        for i in range(steps):
            g = grad(x, params)
            residual = float(jnp.max(jnp.abs(g)))
            if residual <= tol:
                return EquilibriumResult(x, True, i, residual)
            x = x - step * g
        return EquilibriumResult(x, False, steps, residual)

    return solve


DESCENT = EquilibriumSolver(
    name="descent",
    factory=gradient_descent_factory,
    description="fixed-step gradient descent",
    options_schema={"type": "object", "properties": {"step": {"type": "number", "exclusiveMinimum": 0}}},
)

GRADIENT_CONDITION = OptimalityCondition(
    name="zero_gradient",
    factory=lambda system, options: jax.grad(system.energy),
    description="the energy gradient vanishes",
)


def read_plain_xyz(path, options=None):
    with open(path) as handle:
        lines = handle.read().splitlines()
    try:
        n = int(lines[0])
        rows = [line.split() for line in lines[2 : 2 + n]]
        names = [row[0] for row in rows]
        positions = np.array([[float(v) for v in row[1:4]] for row in rows])
    except (IndexError, ValueError) as err:
        raise InputError(f"{path}: not a plain XYZ file ({err})") from None
    species_names = tuple(dict.fromkeys(names))
    species = np.array([species_names.index(n) for n in names])
    return [Structure(positions, species, species_names, source=str(path))]


PLAIN_XYZ = StructureReader(
    name="plain-xyz", read=read_plain_xyz, extensions=(".xyz",), description="plain XYZ"
)


def toy_structure():
    return Structure(
        positions=np.array([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0]]),
        species=np.array([0, 0]),
        species_names=("Ar",),
    )


# -- every hook, through a registered plugin ----------------------------------------------


def test_hook_sensitiv_energy_models_builds_a_usable_system():
    registry = Registry(entry_points=False)
    registry.register(make_plugin(sensitiv_energy_models=lambda: [QUADRATIC]), name="toys")

    model = registry.get_energy_model("quadratic")
    assert model is QUADRATIC and dict(registry.energy_models) == {"quadratic": QUADRATIC}
    system = model.factory(toy_structure(), {"center": 0.0, "parameters": {"k": 3.0}})
    # E = ½ k |x|² with |x|² = 1.25 at the structure's positions.
    assert system.energy(system.positions, system.params) == pytest.approx(0.5 * 3.0 * 1.25, rel=1e-14)
    assert registry.owner("energy_model", "quadratic") == "toys"
    assert registry.plugin_info("toys").contributions == {"sensitiv_energy_models": ("quadratic",)}


def test_hook_sensitiv_equilibrium_solvers_relaxes_a_system():
    registry = Registry(entry_points=False)
    registry.register(make_plugin(sensitiv_energy_models=lambda: [QUADRATIC]), name="models")
    registry.register(make_plugin(sensitiv_equilibrium_solvers=lambda: [DESCENT]), name="solvers")

    system = registry.get_energy_model("quadratic").factory(toy_structure(), {"center": 0.5})
    solve = registry.get_equilibrium_solver("descent").factory({"step": 0.4})
    result = solve(system, system.positions, system.params)
    assert result.converged and 10 < result.iterations < 40  # contraction 0.2 per step
    np.testing.assert_allclose(result.positions, 0.5, rtol=0, atol=1e-12)
    assert registry.equilibrium_solvers["descent"] is DESCENT


def test_hook_sensitiv_optimality_conditions_vanishes_at_the_equilibrium():
    registry = Registry(entry_points=False)
    registry.register(
        make_plugin(
            sensitiv_energy_models=lambda: [QUADRATIC],
            sensitiv_optimality_conditions=lambda: [GRADIENT_CONDITION],
        ),
        name="both",
    )
    system = registry.get_energy_model("quadratic").factory(toy_structure(), {"center": 0.5})
    F = registry.get_optimality_condition("zero_gradient").factory(system, {})
    np.testing.assert_allclose(F(jnp.full((2, 3), 0.5), system.params), 0.0, atol=0)
    # k (x − c) away from it.
    np.testing.assert_allclose(F(system.positions, system.params), 2.0 * (system.positions - 0.5))
    assert registry.plugin_info("both").hooks == (
        "sensitiv_energy_models",
        "sensitiv_optimality_conditions",
    )


def test_hook_sensitiv_structure_readers_reads_by_name_and_by_ending(tmp_path):
    registry = Registry(entry_points=False)
    registry.register(make_plugin(sensitiv_structure_readers=lambda: [PLAIN_XYZ]), name="xyz")
    path = tmp_path / "water.XYZ"
    path.write_text("3\ncomment\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n")

    reader = registry.find_structure_reader(path)
    assert reader is registry.get_structure_reader("plain-xyz")
    (structure,) = reader.read(str(path), {})
    assert structure.species_names == ("O", "H") and structure.n_atoms == 3
    np.testing.assert_allclose(structure.positions[2], [-0.24, 0.93, 0.0])


def test_pluggy_hook_relay_collects_every_plugin():
    registry = Registry(entry_points=False)
    registry.register(make_plugin(sensitiv_energy_models=lambda: [QUADRATIC]), name="a")
    other = EnergyModel(name="other", factory=quadratic_factory)
    registry.register(make_plugin(sensitiv_energy_models=lambda: [other]), name="b")
    results = registry.hook.sensitiv_energy_models()
    assert sorted(r.name for batch in results for r in batch) == ["other", "quadratic"]


# -- refused plugins -------------------------------------------------------------------


def test_duplicate_name_across_plugins_names_both_and_keeps_the_first():
    registry = Registry(entry_points=False)
    registry.register(make_plugin(sensitiv_energy_models=lambda: [QUADRATIC]), name="first_plugin")
    clash = EnergyModel(name="quadratic", factory=quadratic_factory)
    with pytest.raises(PluginError) as info:
        registry.register(make_plugin(sensitiv_energy_models=lambda: [clash]), name="second_plugin")
    message = str(info.value)
    assert "'quadratic'" in message and "first_plugin" in message and "second_plugin" in message
    assert "\n" not in message
    assert [p.name for p in registry.plugins] == ["first_plugin"]
    assert registry.get_energy_model("quadratic") is QUADRATIC
    # The refused plugin left no hook implementation behind.
    assert len(registry.hook.sensitiv_energy_models()) == 1


def test_duplicate_name_within_one_plugin():
    registry = Registry(entry_points=False)
    with pytest.raises(PluginError, match=r"plugin 'twice' contributes structure reader 'plain-xyz' twice"):
        registry.register(
            make_plugin(sensitiv_structure_readers=lambda: [PLAIN_XYZ, PLAIN_XYZ]), name="twice"
        )
    assert registry.plugins == ()


def test_same_name_of_different_kinds_is_no_clash():
    registry = Registry(entry_points=False)
    registry.register(make_plugin(sensitiv_energy_models=lambda: [QUADRATIC]), name="a")
    solver = EquilibriumSolver(name="quadratic", factory=gradient_descent_factory)
    registry.register(make_plugin(sensitiv_equilibrium_solvers=lambda: [solver]), name="b")
    assert registry.get_equilibrium_solver("quadratic") is solver


def test_misspelled_hook_is_refused_with_a_suggestion_and_unregistered():
    registry = Registry(entry_points=False)
    typo = make_plugin(sensitiv_energy_model=lambda: [QUADRATIC])
    with pytest.raises(PluginError) as info:
        registry.register(typo, name="typo_plugin")
    message = str(info.value)
    assert "typo_plugin" in message and "'sensitiv_energy_model'" in message
    assert "did you mean 'sensitiv_energy_models'" in message
    assert registry.plugins == ()
    # The registry stays usable: a correct plugin registers after the refusal.
    registry.register(make_plugin(sensitiv_energy_models=lambda: [QUADRATIC]), name="good")
    assert list(registry.energy_models) == ["quadratic"]


def test_unmarked_hook_function_is_refused():
    registry = Registry(entry_points=False)
    plugin = types.SimpleNamespace(sensitiv_energy_models=lambda: [QUADRATIC])
    with pytest.raises(PluginError, match=r"plugin 'forgot'.*not marked with @hookimpl"):
        registry.register(plugin, name="forgot")
    assert registry.plugins == ()


def test_hook_with_arguments_not_in_the_spec_is_refused():
    registry = Registry(entry_points=False)
    with pytest.raises(PluginError, match=r"plugin 'args' is invalid"):
        registry.register(make_plugin(sensitiv_energy_models=lambda config: []), name="args")
    assert registry.plugins == () and registry.hook.sensitiv_energy_models() == []


@pytest.mark.parametrize(
    "hook, result, match",
    [
        ("sensitiv_energy_models", {"quadratic": QUADRATIC}, r"returned dict; expected a list of EnergyModel"),
        ("sensitiv_energy_models", [DESCENT], r"returned a EquilibriumSolver; expected .*EnergyModel"),
        ("sensitiv_energy_models", [EnergyModel(name="x", factory=None)], r"energy model 'x': `factory` is not callable"),
        ("sensitiv_energy_models", [EnergyModel(name=" x", factory=quadratic_factory)], r"invalid name ' x'"),
        (
            "sensitiv_energy_models",
            [EnergyModel(name="x", factory=quadratic_factory, parameters=(Parameter("a"), Parameter("a")))],
            r"parameter 'a' is declared twice",
        ),
        (
            "sensitiv_energy_models",
            [EnergyModel(name="x", factory=quadratic_factory, parameters=(Parameter("a", ("bonds",)),))],
            r"parameter 'a' has shape \('bonds',\)",
        ),
        (
            "sensitiv_equilibrium_solvers",
            [EquilibriumSolver(name="s", factory=gradient_descent_factory,
                               options_schema={"type": "object", "properties": {"tol": {"type": "numbr"}}})],
            r"equilibrium solver 's': invalid `options_schema` at properties/tol/type",
        ),
        (
            "sensitiv_optimality_conditions",
            [OptimalityCondition(name="c", factory=lambda s, o: None, options_schema={"type": "array"})],
            r"`options_schema` must describe an object",
        ),
        (
            "sensitiv_structure_readers",
            [StructureReader(name="r", read=read_plain_xyz, extensions=".xyz")],
            r"`extensions` must be a tuple of non-empty strings",
        ),
    ],
)
def test_invalid_records_are_refused_naming_plugin_and_record(hook, result, match):
    registry = Registry(entry_points=False)
    with pytest.raises(PluginError, match=match) as info:
        registry.register(make_plugin(**{hook: lambda: result}), name="broken_records")
    assert f"plugin 'broken_records': {hook}()" in str(info.value)
    assert registry.plugins == ()


def test_hook_that_raises_is_reported_with_the_plugin_name():
    def explode():
        raise RuntimeError("missing data file")

    registry = Registry(entry_points=False)
    with pytest.raises(PluginError, match=r"plugin 'fragile': sensitiv_structure_readers\(\) raised "
                       r"RuntimeError: missing data file"):
        registry.register(make_plugin(sensitiv_structure_readers=explode), name="fragile")


def test_register_refuses_a_taken_name_and_unregister_removes_contributions():
    registry = Registry(entry_points=False)
    registry.register(make_plugin(sensitiv_energy_models=lambda: [QUADRATIC]), name="mine")
    with pytest.raises(PluginError, match="a plugin named 'mine' is already registered"):
        registry.register(make_plugin(), name="mine")
    registry.unregister("mine")
    assert registry.plugins == () and dict(registry.energy_models) == {}
    registry.register(make_plugin(sensitiv_energy_models=lambda: [QUADRATIC]), name="mine")
    assert "quadratic" in registry.energy_models
    with pytest.raises(PluginError, match=r"no plugin named 'mien' is registered \(did you mean 'mine'\?\)"):
        registry.unregister("mien")


def test_module_plugin_default_name_and_version():
    module = types.ModuleType("sensitiv_toy_module_plugin")
    module.__version__ = "2.5"
    module.sensitiv_optimality_conditions = hookimpl(lambda: [GRADIENT_CONDITION])
    registry = Registry(entry_points=False)
    assert registry.register(module) == "sensitiv_toy_module_plugin"
    sys.modules["sensitiv_toy_module_plugin"] = module
    try:
        info = Registry(entry_points=False)
        info.register(module)
        (plugin,) = info.plugins
        assert plugin.version == "2.5" and plugin.entry_point is None and plugin.distribution is None
    finally:
        del sys.modules["sensitiv_toy_module_plugin"]


# -- lookups ---------------------------------------------------------------------------


def _toy_registry():
    registry = Registry(entry_points=False)
    soft = EnergyModel(name="soft_sphere", factory=quadratic_factory)
    registry.register(make_plugin(sensitiv_energy_models=lambda: [QUADRATIC, soft]), name="toys")
    return registry


def test_unknown_name_is_one_line_with_a_close_match_and_the_known_names():
    registry = _toy_registry()
    with pytest.raises(PluginError) as info:
        registry.get_energy_model("sof_sphere")
    message = str(info.value)
    assert message == (
        "unknown energy model 'sof_sphere' (did you mean 'soft_sphere'?); "
        "known energy models: quadratic, soft_sphere"
    )


def test_unknown_name_without_close_match_lists_the_known_names():
    with pytest.raises(PluginError) as info:
        _toy_registry().get("energy_model", "lennard_jones")
    assert "did you mean" not in str(info.value)
    assert str(info.value).endswith("known energy models: quadratic, soft_sphere")


def test_unknown_name_when_nothing_contributes_the_kind():
    registry = _toy_registry()
    with pytest.raises(PluginError, match=r"no installed plugin contributes equilibrium solvers \(plugins: toys"):
        registry.get_equilibrium_solver("fire")


def test_lookup_by_kind_hook_or_attribute_name_and_unknown_kind():
    registry = _toy_registry()
    for key in ("energy_model", "sensitiv_energy_models", "energy_models"):
        assert set(registry.records(key)) == {"quadratic", "soft_sphere"}
    with pytest.raises(PluginError, match=r"unknown contribution kind 'energy'"):
        registry.records("energy")
    with pytest.raises(TypeError):
        registry.energy_models["new"] = QUADRATIC  # read-only view


def test_reader_lookup_prefers_the_longest_ending_and_reports_ambiguity(tmp_path):
    registry = Registry(entry_points=False)
    ext = StructureReader(name="extxyz", read=read_plain_xyz, extensions=(".extxyz", ".ext.xyz"))
    poscar = StructureReader(name="vasp", read=read_plain_xyz, extensions=("POSCAR", ".vasp"))
    registry.register(make_plugin(sensitiv_structure_readers=lambda: [PLAIN_XYZ, ext, poscar]), name="r1")

    assert registry.find_structure_reader("a/run.xyz").name == "plain-xyz"
    assert registry.find_structure_reader("a/run.EXT.xyz").name == "extxyz"
    assert registry.find_structure_reader("/calc/POSCAR").name == "vasp"
    with pytest.raises(PluginError, match=r"run\.cif: cannot tell the format from the file name: no structure reader claims its ending; "
                       r"claimed endings: \.ext\.xyz, \.extxyz, \.vasp, \.xyz, POSCAR"):
        registry.find_structure_reader("run.cif")

    other = StructureReader(name="other-xyz", read=read_plain_xyz, extensions=(".xyz",))
    registry.register(make_plugin(sensitiv_structure_readers=lambda: [other]), name="r2")
    with pytest.raises(PluginError, match=r"its ending is claimed by readers 'other-xyz' \(r2\) and 'plain-xyz' \(r1\); "
                       r"choose one with structure.format"):
        registry.find_structure_reader("run.xyz")


def test_config_uses_the_one_reader_lookup_and_refuses_a_tie(tmp_path):
    # The pipeline used to pick the first reader alphabetically on a tie; there is one
    # lookup now (Registry.find_structure_reader), and a tie is an error naming both.
    from sensitiv.pipeline import config

    (tmp_path / "a.xyz").write_text("1\n\nAr 0 0 0\n")
    registry = Registry(entry_points=["builtin", "jaxmd", "ase"])
    registry.register(make_plugin(sensitiv_structure_readers=lambda: [PLAIN_XYZ]), name="toy")
    text = "structure: {file: a.xyz}\nmodel: {name: lennard_jones}\n"
    with pytest.raises(ConfigError, match=r"claimed by readers 'extxyz' \(ase\) and 'plain-xyz' \(toy\)"):
        config.load(str(tmp_path / "c.yaml"), text=text, registry=registry)
    cfg = config.load(str(tmp_path / "c.yaml"), text=text.replace("a.xyz}", "a.xyz, format: plain-xyz}"),
                      registry=registry)
    assert [f.format for f in cfg.structure.files] == ["plain-xyz"]


def test_to_dict_is_json_ready():
    registry = Registry(entry_points=False)
    matrix = EnergyModel(
        name="pairs",
        factory=quadratic_factory,
        parameters=(Parameter("sigma", ("species", "species"), "angstrom", np.ones((2, 2))),
                    Parameter("cutoff", (), "angstrom", 2.5, differentiable=False)),
    )
    registry.register(make_plugin(sensitiv_energy_models=lambda: [matrix],
                                  sensitiv_structure_readers=lambda: [PLAIN_XYZ]), name="p")
    data = json.loads(json.dumps(registry.to_dict()))
    (plugin,) = data["plugins"]
    (model,) = plugin["contributions"]["sensitiv_energy_models"]
    assert model["parameters"][0] == {
        "name": "sigma", "shape": ["species", "species"], "units": "angstrom",
        "default": [[1.0, 1.0], [1.0, 1.0]], "differentiable": True, "description": "",
    }
    assert model["parameters"][1]["differentiable"] is False
    assert plugin["contributions"]["sensitiv_structure_readers"][0]["extensions"] == [".xyz"]
    assert data["autoload"] is False and data["selection"] is None


# -- entry points ----------------------------------------------------------------------


def write_distribution(root, dist_name, version, entry_points, modules):
    """Write an installed-looking distribution (dist-info + modules) under `root`."""
    info = root / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    info.joinpath("entry_points.txt").write_text(f"[sensitiv]\n{lines}")
    for module, source in modules.items():
        root.joinpath(f"{module}.py").write_text(textwrap.dedent(source))


PLUGIN_SOURCE = """
    from sensitiv.hookspecs import hookimpl
    from sensitiv.records import StructureReader

    def _read(path, options=None):
        raise NotImplementedError

    @hookimpl
    def sensitiv_structure_readers():
        return [StructureReader(name={name!r}, read=_read, extensions=(".fake",))]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on `sys.path` to install test distributions into; cleans their modules."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("sensitiv_epfake"):
            del sys.modules[name]


def test_entry_point_plugin_is_discovered_with_its_distribution(site):
    write_distribution(site, "sensitiv-fake", "0.3.1", {"fake": "sensitiv_epfake_a"},
                       {"sensitiv_epfake_a": PLUGIN_SOURCE.format(name="fake-format")})
    registry = Registry(entry_points=["builtin", "fake"])
    assert [p.name for p in registry.plugins] == ["builtin", "fake"]
    info = registry.plugin_info("fake")
    assert (info.distribution, info.version, info.entry_point) == ("sensitiv-fake", "0.3.1", "sensitiv_epfake_a")
    assert registry.find_structure_reader("x.fake").name == "fake-format"
    assert registry.versions()["fake"] == "0.3.1"


def test_builtin_registers_through_its_entry_point():
    registry = Registry(entry_points=["builtin"])
    (info,) = registry.plugins
    assert (info.name, info.module, info.entry_point, info.distribution) == (
        "builtin", "sensitiv.plugins.builtin", "sensitiv.plugins.builtin", "sensitiv",
    )
    assert registry.find_structure_reader("traj.nc").name == "amber-netcdf"
    assert registry.owner("structure_reader", "amber-netcdf") == "builtin"


def test_old_builtin_path_still_registers_with_a_deprecation_warning(monkeypatch):
    # Environments installed before the move still name `sensitiv.builtin` in their
    # entry-point metadata: the old module keeps working for one release, and says so.
    monkeypatch.delitem(sys.modules, "sensitiv.builtin", raising=False)
    with pytest.deprecated_call(match="sensitiv.plugins.builtin"):
        old = importlib.import_module("sensitiv.builtin")
    registry = Registry(entry_points=False)
    registry.register(old, name="old-builtin")
    assert registry.find_structure_reader("traj.nc").name == "amber-netcdf"


def test_autoload_loads_every_entry_point(site, monkeypatch):
    write_distribution(site, "sensitiv-fake", "0.3.1", {"fake": "sensitiv_epfake_b"},
                       {"sensitiv_epfake_b": PLUGIN_SOURCE.format(name="fake-format")})
    # Autoload takes every name `available_entry_points` finds; keep that to these two
    # (importing jax-md for the first-party plugin takes ~10 s; the slow test below does).
    found = Registry.available_entry_points()
    assert {"builtin", "fake"} <= set(found)
    only = {name: found[name] for name in ("fake", "builtin")}
    monkeypatch.setattr(Registry, "available_entry_points", staticmethod(lambda: only))
    registry = Registry()
    assert [p.name for p in registry.plugins] == ["builtin", "fake"]  # builtin first
    assert registry.autoload is True and registry.selection is None


@pytest.mark.slow
def test_every_installed_plugin_loads_cleanly():
    # Integration: the plugins installed with sensitiv (builtin, jaxmd, ase, ...) load
    # together, strictly: no import error, no invalid record, no name clash.
    registry = Registry(entry_points=True)
    names = {p.name for p in registry.plugins}
    assert {"builtin", "jaxmd", "ase"} <= names
    assert "amber-netcdf" in registry.structure_readers and registry.energy_models


def test_disable_autoload_environment_variable(monkeypatch, site):
    write_distribution(site, "sensitiv-fake", "0.3.1", {"fake": "sensitiv_epfake_c"},
                       {"sensitiv_epfake_c": PLUGIN_SOURCE.format(name="fake-format")})
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "1")
    registry = Registry()
    assert registry.plugins == () and registry.autoload is False
    with pytest.raises(PluginError, match=r"plugin autoload is off \(SENSITIV_DISABLE_PLUGIN_AUTOLOAD\)"):
        registry.get_structure_reader("amber-netcdf")
    # Plugins can still be registered from code.
    registry.register(make_plugin(sensitiv_structure_readers=lambda: [PLAIN_XYZ]), name="xyz")
    assert list(registry.structure_readers) == ["plain-xyz"]
    # An explicit selection wins over the switch.
    monkeypatch.setenv(ENV_PLUGINS, "fake")
    assert [p.name for p in Registry().plugins] == ["fake"]


@pytest.mark.parametrize("value", ["0", "false", "off", ""])
def test_disable_autoload_accepts_false_words(monkeypatch, value):
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, value)
    monkeypatch.setenv(ENV_PLUGINS, "builtin")  # keep to entry points known to load
    assert plugins._registry._autoload_disabled(value) is False
    assert [p.name for p in Registry().plugins] == ["builtin"]


def test_plugin_selection_environment_variable(monkeypatch, site):
    write_distribution(site, "sensitiv-fake", "0.3.1", {"fake": "sensitiv_epfake_d"},
                       {"sensitiv_epfake_d": PLUGIN_SOURCE.format(name="fake-format")})
    monkeypatch.setenv(ENV_PLUGINS, " fake , builtin,fake")
    registry = Registry()
    assert [p.name for p in registry.plugins] == ["fake", "builtin"]
    assert registry.selection == ("fake", "builtin", "fake") and registry.autoload is False
    with pytest.raises(PluginError, match=r"only fake, builtin, fake selected"):
        registry.get_energy_model("anything")


def test_selecting_an_unknown_entry_point_suggests_a_close_match(monkeypatch):
    monkeypatch.setenv(ENV_PLUGINS, "builtn")
    with pytest.raises(PluginError) as info:
        Registry()
    message = str(info.value)
    assert message.startswith("SENSITIV_PLUGINS: no plugin entry point named 'builtn' (did you mean 'builtin'?); installed:")
    assert "builtin" in message.split("installed:")[1]


def test_entry_point_duplicate_with_builtin_names_both(site):
    write_distribution(site, "sensitiv-clash", "1.0", {"clash": "sensitiv_epfake_e"},
                       {"sensitiv_epfake_e": PLUGIN_SOURCE.format(name="amber-netcdf")})
    with pytest.raises(PluginError) as info:
        Registry(entry_points=["builtin", "clash"])
    message = str(info.value)
    assert "structure reader 'amber-netcdf' is contributed by two plugins" in message
    assert "builtin (sensitiv 0.1.0)" in message and "'clash'" in message
    # Non-strict: the clashing plugin is left out, the first one stays.
    registry = Registry(entry_points=["builtin", "clash"], strict=False)
    assert [p.name for p in registry.plugins] == ["builtin"]
    assert registry.errors[0][0] == "clash"


def test_entry_point_with_misspelled_hook_is_refused(site):
    source = """
        from sensitiv.hookspecs import hookimpl

        @hookimpl
        def sensitiv_structure_reader():
            return []
    """
    write_distribution(site, "sensitiv-typo", "1.0", {"typo": "sensitiv_epfake_f"}, {"sensitiv_epfake_f": source})
    with pytest.raises(PluginError, match=r"plugin 'typo' implements unknown hook 'sensitiv_structure_reader' "
                       r"\(did you mean 'sensitiv_structure_readers'\?\)"):
        Registry(entry_points=["typo"])
    registry = Registry(entry_points=["typo", "builtin"], strict=False)
    assert [p.name for p in registry.plugins] == ["builtin"]


def test_entry_point_that_fails_to_import(site):
    write_distribution(site, "sensitiv-gone", "1.0", {"gone": "sensitiv_epfake_missing.plugin"}, {})
    with pytest.raises(PluginError, match=r"plugin 'gone' \(sensitiv_epfake_missing.plugin, from sensitiv-gone\) "
                       r"failed to load: ModuleNotFoundError"):
        Registry(entry_points=["gone"])


def test_two_distributions_declaring_one_entry_point_name(site):
    write_distribution(site, "sensitiv-one", "1.0", {"same": "sensitiv_epfake_g"}, {})
    write_distribution(site, "sensitiv-two", "1.0", {"same": "sensitiv_epfake_h"}, {})
    with pytest.raises(PluginError, match=r"entry point 'same' of group 'sensitiv' is declared by two "
                       r"distributions: sensitiv-(one|two) .* and sensitiv-(one|two)"):
        Registry(entry_points=["builtin"])


# -- the default registry ----------------------------------------------------------------


def test_default_registry_is_cached_and_can_be_refreshed(monkeypatch):
    monkeypatch.setattr(plugins._registry, "_default", None)
    monkeypatch.setenv(ENV_PLUGINS, "builtin")
    first = get_registry()
    assert get_registry() is first
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "1")
    monkeypatch.delenv(ENV_PLUGINS)
    assert get_registry() is first  # cached: the environment is read once
    fresh = get_registry(refresh=True)
    assert fresh is not first and fresh.plugins == () and get_registry() is fresh
    assert Registry(entry_points=["builtin"]) is not fresh


def test_factory_errors_keep_their_type():
    # Plugins signal bad options with sensitiv.errors; the host does not wrap factories.
    def factory(structure, options):
        raise ConfigError("model.options.cutoff: must be positive")

    registry = Registry(entry_points=False)
    registry.register(make_plugin(sensitiv_energy_models=lambda: [EnergyModel("bad", factory)]), name="p")
    with pytest.raises(ConfigError, match="model.options.cutoff"):
        registry.get_energy_model("bad").factory(toy_structure(), {})


def test_the_host_imports_no_physics_package():
    # The host (hookspecs, plugins, builtin, the `plugins` command) stays free of jax-md
    # and ASE: only the plugins that need them import them.
    code = (
        "import sys\n"
        "from sensitiv.cli import main\n"
        "assert main(['plugins', '--json']) == 0\n"
        "loaded = sorted(m for m in ('jax_md', 'ase', 'sensitiv_jaxmd', 'sensitiv_ase') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    env = dict(os.environ, **{ENV_PLUGINS: "builtin"})
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
