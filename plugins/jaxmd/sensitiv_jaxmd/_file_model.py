"""What the models read from LAMMPS potential files share: the `potential_file` and
`elements` options, the species → element map of `pair_coeff * * FILE El1 El2 …`, the
metal-units check, and a per-process cache of parsed files."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence

from sensitiv.errors import ConfigError, InputError

from ._model import Model
from ._potential_files import find_potential_file, read_triplet_file, triplet_arrays

__all__ = ["FileModel", "TripletFileModel", "cached"]

#: Length units LAMMPS `metal` potentials are written in.
_ANGSTROM = {"angstrom", "Angstrom", "Å", "A", "angstroms"}

def cached(reader):
    """Cache a file parser on (path, size, modification time): a file is parsed once per
    process however many structures or ensemble members bind it."""

    @functools.lru_cache(maxsize=16)
    def by_stamp(path, size, mtime, *args):
        return reader(path, *args)

    @functools.wraps(reader)
    def read(path, *args):
        stat = os.stat(path)
        return by_stamp(path, stat.st_size, stat.st_mtime_ns, *args)

    return read


class FileModel(Model):
    """A model whose functions or parameters come from a LAMMPS potential file (metal units)."""

    many_body = True

    def provenance(self, ctx) -> tuple[str, str, Sequence[str]]:
        """`(potential file, LAMMPS pair style, element of each species)` of a binding."""
        return ctx.data["path"], ctx.data["pair_style"], ctx.data["elements"]

    def describe(self, options, ctx) -> dict:
        path, style, elements = self.provenance(ctx)
        return {
            "potential_file": path,
            "pair_style": style,
            "elements": list(elements),
            # θ components along species dimensions are labelled by species name
            # (`A[Si,Si,C]`), as LAMMPS names the file's entries.
            "index_labels": "species",
        }

    def element_map(self, structure, options) -> tuple[str, ...]:
        """The file element of each species of the structure (in species order)."""
        names = tuple(structure.species_names) or ("X",)
        chosen = options.get("elements")
        if chosen is None:
            return names
        if isinstance(chosen, Mapping):
            missing = [n for n in names if n not in chosen]
            if missing:
                raise ConfigError(
                    f"model {self.name!r}: option elements has no element for species {missing[0]!r} "
                    f"(the structure's species are {list(names)})"
                )
            return tuple(str(chosen[n]) for n in names)
        if len(chosen) != len(names):
            raise ConfigError(
                f"model {self.name!r}: option elements lists {len(chosen)} element(s) for the "
                f"structure's {len(names)} species {list(names)}; give one per species, or a mapping"
            )
        return tuple(str(e) for e in chosen)

    def check_units(self, structure) -> None:
        if structure.length_units not in _ANGSTROM:
            raise InputError(
                f"model {self.name!r}: LAMMPS potential files are in metal units (eV, angstrom) but "
                f"{structure.source or 'the structure'} is in {structure.length_units!r}; read it in "
                "angstrom (structure.options.units: metal for LAMMPS files)"
            )

    def locate(self, name: str) -> str:
        return find_potential_file(name, "model.options.potential_file")

    @staticmethod
    def missing_elements(wanted: Sequence[str], available: Sequence[str], path: str) -> None:
        missing = [e for e in dict.fromkeys(wanted) if e not in available]
        if missing:
            raise InputError(
                f"{path}: no element {missing[0]!r} in this potential file (it has "
                f"{', '.join(available)}); map the structure's species with model.options.elements"
            )


@cached
def _read_triplets(path: str, fields: tuple[str, ...]):
    return read_triplet_file(path, fields)


class TripletFileModel(FileModel):
    """A model whose parameters are a LAMMPS file's entries per element triplet (Tersoff,
    Stillinger–Weber): every field is a `(species, species, species)` parameter whose
    default is the file's value."""

    masks_phantoms = True  # every term is a sum over neighbors

    pair_style = ""
    fields: tuple[str, ...] = ()

    def prepare(self, structure, options):
        self.check_units(structure)
        path = self.locate(options["potential_file"])
        return {"path": path, "pair_style": self.pair_style, "elements": self.element_map(structure, options)}

    def defaults(self, structure, options) -> dict:
        path = self.locate(options["potential_file"])
        return triplet_arrays(_read_triplets(path, tuple(self.fields)), self.element_map(structure, options),
                              self.fields, path)
