"""sensitiv-ase: structure readers for sensitiv through ASE's `ase.io`.

Formats: extended XYZ (`extxyz`), LAMMPS data (`lammps-data`) and text dumps
(`lammps-dump`), VASP POSCAR/CONTCAR (`vasp`) and CIF (`cif`). Registered through the
`sensitiv` entry-point group as `ase = "sensitiv_ase.plugin"`.
"""

from .readers import atoms_to_structure, read_with_ase

__version__ = "0.1.0"

__all__ = ["atoms_to_structure", "read_with_ase", "__version__"]
