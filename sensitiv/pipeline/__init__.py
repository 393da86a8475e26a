"""The analysis pipeline behind `sensitiv analyze`.

config → structure → model → equilibrium → Jacobian → observables → NetCDF:

- `config`: load the YAML configuration, validate every error with `file:line:col`,
  resolve defaults (`config.load`);
- `structure`: read structures through reader plugins, or generate packings and lattices;
- `analyze`: bind the model, relax, differentiate, evaluate observables, build the
  labeled `xarray.Dataset`;
- `ensemble`: many frames, files or parameter samples, optionally distributed with Dask;
- `output`: the NetCDF contract and its atomic writer.

This layer composes the plugin host and the numerical core; `sensitiv.cli` is a thin
shell over it.
"""
