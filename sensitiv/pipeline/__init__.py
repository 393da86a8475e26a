"""The analysis pipeline behind `sensitiv analyze`.

Read top to bottom, a run is `run.run_config`: structures → tasks → analyze → dataset →
combine → write. Each stage has one module and reads the typed config, never the YAML:

- `config`: load the YAML, validate every error with `file:line:col` (`_schema`), resolve it
  once into frozen, typed sections (`config.load` → `Config`);
- `structure`: read structures through the reader chosen at load time, or generate
  packings and lattices;
- `ensemble`: the tasks (every structure × parameter sample) and the Dask client;
- `theta`: the parameters θ: labels, scalar components, binding values to a structure;
- `analyze`: one structure: bind the model, relax, differentiate, observables; returns
  numbers (`analysis.StructureAnalysis`);
- `dataset`: the NetCDF contract: numbers → labeled `xarray.Dataset`; the one place that
  spells output names;
- `output`: combine datasets, write NetCDF atomically, open results;
- `report`: the closing summary and `sensitiv inspect`;
- `plot`: `sensitiv plot` and `sensitiv.plot`, the figure of a result;
- `run`: the whole run, in the order above.

This layer composes the plugin host and the numerical core; `sensitiv.cli` is a thin
shell over it.
"""
