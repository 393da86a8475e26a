"""The covariance of Cu_u3's four parts (F, ρ, φ scales and the radial stretch λ) that the
experimental data it was fitted to allow: the Laplace approximation of a least-squares fit.

Foiles, Baskes & Daw (*Phys. Rev. B* **33**, 7983 (1986)) fitted `Cu_u3.eam` to room-
temperature data: the lattice constant, the cohesive energy, the elastic constants. A
static (0 K) potential cannot tell room-temperature from 0 K values, so each target is
uncertain by at least that difference; this script takes it as the standard deviation
s_i of target i:

| property | room temperature | 0 K | s_i |
| --- | --- | --- | --- |
| a₀ (Å) | 3.615 | 3.603 (thermal expansion) | 0.012 |
| E_c (eV/atom) | 3.54 | 3.49 (Kittel) | 0.05 |
| C11 (GPa) | 168.4 | 176.2 | 7.8 |
| C12 (GPa) | 121.4 | 124.9 | 3.5 |
| C44 (GPa) | 75.4 | 81.8 | 6.4 |
| E_v (eV), vacancy formation | 1.28 | 1.28 | 0.05 (its experimental error) |

(elastic constants: Simmons & Wang's handbook at 300 K; Overton & Gaffney, *Phys. Rev.*
**98**, 969 (1955) at 0 K; E_v: positron annihilation, 1.28 ± 0.05 eV, the value the
potential was fitted to.) The properties P(θ) of the perfect crystal are computed with the
same model sensitiv analyzes (`eam`, 4-atom cubic cell), the zero-pressure lattice constant
a₀(θ) by `sensitiv.custom_root` on the pressure, so that dP/dθ is exact (implicit
differentiation; checked here against central differences of re-solved properties). E_v
is LAMMPS' relaxed vacancy (`vacancy.data`) at the zero-pressure cell; its derivative is
the partial one at the relaxed positions (they are a minimum: the envelope theorem), with
the cell following a₀(θ). The
fit's covariance is `Σ = (Jᵀ S⁻² J)⁻¹`, `J = dP/dθ` at θ = 1 (the file's potential):
six data, four parameters, correlated through the data they share. Written to
`covariance.json`, which `uncertainty.yaml` reads (`uncertainty: {file: covariance.json}`).

`--targets measured` takes instead the precision of the room-temperature measurements
themselves as s_i (stated assumptions: 0.05 % for a₀, 1 % for E_c and the elastic
constants, 0.05 eV for E_v) — the covariance a fit to those numbers alone would export,
ignoring that a static potential is fitted to 300 K data — and writes
`covariance_measured.json` (`uncertainty_measured.yaml`).

Run:  python examples/eam_vacancy/fit_covariance.py [--targets thermal|measured]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import sensitiv_jaxmd  # noqa: E402

from sensitiv import custom_root  # noqa: E402
from sensitiv.records import Structure  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import POTENTIAL, perfect_lattice  # noqa: E402

#: GPa per eV/Å³
EV_A3_GPA = 160.21766208
LABELS = ("embedding_scale[Cu]", "density_scale[Cu]", "pair_scale[Cu,Cu]", "radial_scale")
PROPERTIES = ("a0", "cohesive_energy", "C11", "C12", "C44", "vacancy_formation_energy")
UNITS = ("angstrom", "eV", "GPa", "GPa", "GPa", "eV")
#: (room temperature, 0 K) of each property, see the docstring
DATA = {"a0": (3.615, 3.603), "cohesive_energy": (3.54, 3.49), "C11": (168.4, 176.2),
        "C12": (121.4, 124.9), "C44": (75.4, 81.8)}
#: experimental value and standard error of E_v
VACANCY = (1.28, 0.05)
A_REF = 3.615


def crystal():
    """The 4-atom cubic cell of fcc copper at A_REF and the bound `eam` system."""
    positions, cell = perfect_lattice(A_REF, 1)
    structure = Structure(positions=positions, species=np.zeros(4, int), species_names=("Cu",),
                          cell=cell, pbc=(True, True, True), source="fcc")
    return sensitiv_jaxmd.MODELS["eam"].record().factory(structure, {"potential_file": POTENTIAL})


def vacancy():
    """LAMMPS' relaxed vacancy (`vacancy.data`, read as `config.yaml` reads it), bound, and
    its cell's lattice constant."""
    from sensitiv.pipeline import config, structure

    read = structure.read_structures(config.load(str(HERE / "config.yaml")).structure)[0]
    system = sensitiv_jaxmd.MODELS["eam"].record().factory(read, {"potential_file": POTENTIAL})
    return system, float(read.cell[0, 0]) / 4


def properties_function(system, vacancy_system, vacancy_a):
    """`P(θ)`: (a₀, E_c, C11, C12, C44, E_v), θ the four parts (vector)."""
    x = jnp.asarray(system.positions)
    x_vac = jnp.asarray(vacancy_system.positions)

    def params_of(theta, strain, system=system):
        p = dict(system.params)
        p["embedding_scale"] = jnp.reshape(theta[0], jnp.shape(p["embedding_scale"]))
        p["density_scale"] = jnp.reshape(theta[1], jnp.shape(p["density_scale"]))
        p["pair_scale"] = jnp.reshape(theta[2], jnp.shape(p["pair_scale"]))
        p["radial_scale"] = jnp.reshape(theta[3], jnp.shape(p["radial_scale"]))
        p["strain"] = strain
        return p

    def energy(s, theta, strain=jnp.zeros((3, 3))):
        """Energy per atom at the isotropic stretch (1 + s) and a further small `strain`."""
        deformation = (1.0 + s) * (jnp.eye(3) + strain) - jnp.eye(3)
        return system.energy(x, params_of(theta, deformation)) / x.shape[0]

    def pressure_condition(s, theta):  # dE/ds = 0: zero pressure
        return jax.grad(energy)(s, theta)

    @custom_root(pressure_condition)
    def stretch(s0, theta):
        def newton(_, s):
            return s - pressure_condition(s, theta) / jax.grad(pressure_condition)(s, theta)
        return jax.lax.fori_loop(0, 30, newton, s0)

    def voigt(e):  # Voigt vector (engineering shears) -> symmetric strain
        return jnp.array([[e[0], e[5] / 2, e[4] / 2], [e[5] / 2, e[1], e[3] / 2], [e[4] / 2, e[3] / 2, e[2]]])

    def crystal_props(theta):
        s = stretch(jnp.zeros(()), theta)
        a0 = A_REF * (1.0 + s)
        volume = a0**3 / 4  # per atom
        hess = jax.hessian(lambda e: energy(s, theta, voigt(e)))(jnp.zeros(6)) / volume * EV_A3_GPA
        return jnp.array([a0, -energy(s, theta), hess[0, 0], hess[0, 1], hess[3, 3]])

    def props(theta):
        s = stretch(jnp.zeros(()), theta)
        a0 = A_REF * (1.0 + s)
        # E_v at the zero-pressure cell: the relaxed positions stretched with it (a minimum at
        # θ = 1, so the first derivative needs no re-relaxation)
        stretch_vac = (a0 / vacancy_a - 1.0) * jnp.eye(3)
        e_vac = vacancy_system.energy(x_vac, params_of(theta, stretch_vac, vacancy_system))
        e_v = e_vac - x_vac.shape[0] * energy(s, theta)
        return jnp.concatenate([crystal_props(theta), e_v[None]])

    return props, crystal_props


#: s_i of `--targets measured`: the assumed precision of the room-temperature data
MEASURED = {"a0": 0.0005 * 3.615, "cohesive_energy": 0.01 * 3.54, "C11": 0.01 * 168.4,
            "C12": 0.01 * 121.4, "C44": 0.01 * 75.4}


def fit_covariance(props, crystal_props, theta0=np.ones(4), targets: str = "thermal") -> dict:
    """The Laplace approximation of the fit at θ0; the Jacobian checked against central
    differences of re-solved properties."""
    theta0 = jnp.asarray(theta0, jnp.float64)
    values = np.asarray(jax.jit(props)(theta0))
    jac = np.asarray(jax.jit(jax.jacfwd(props))(theta0))
    h = 1e-5
    central = np.stack([(np.asarray(props(theta0.at[k].add(h))) - np.asarray(props(theta0.at[k].add(-h)))) / (2 * h)
                        for k in range(4)], axis=1)
    # E_v's row is a value function: its central differences would need re-relaxation
    jac_check = float(np.max(np.abs(jac[:-1] - central[:-1]) / np.max(np.abs(jac[:-1]), axis=1, keepdims=True)))
    spread = MEASURED if targets == "measured" else {k: abs(DATA[k][0] - DATA[k][1]) for k in DATA}
    s = np.array([spread[k] for k in PROPERTIES[:-1]] + [VACANCY[1]])
    weighted = jac / s[:, None]
    laplace = np.linalg.inv(weighted.T @ weighted)
    room = np.array([DATA[k][0] for k in PROPERTIES[:-1]] + [VACANCY[0]])
    residual = (values - room) / s
    # Does the fit's linearization hold over the covariance it gives? Along each principal
    # direction ±1σ: the misfit of the perfect-crystal properties (exact, a₀ re-solved),
    # which the linear model puts at χ² = 1 above the minimum's (E_v left out: it would
    # need re-relaxed vacancies).
    lam, vec = np.linalg.eigh(laplace)
    crystal_rows = slice(0, len(PROPERTIES) - 1)

    def chi2(theta):
        r = (np.asarray(crystal_props(jnp.asarray(theta))) - values[crystal_rows]) / s[crystal_rows]
        return float(r @ r)

    linearity = [{"principal_std": float(np.sqrt(lk)),
                  "direction": dict(zip(LABELS, vk.tolist())),
                  "chi2_linear": float(np.sum((jac[crystal_rows] @ (np.sqrt(lk) * vk) / s[crystal_rows]) ** 2)),
                  "chi2_plus": chi2(theta0 + np.sqrt(lk) * vk), "chi2_minus": chi2(theta0 - np.sqrt(lk) * vk)}
                 for lk, vk in zip(lam[::-1], vec.T[::-1])]
    posterior = posterior_moments(crystal_props, theta0, values, jac, s, laplace)
    covariance = np.asarray(posterior["covariance"])
    std = np.sqrt(np.diag(covariance))
    return {
        "parameters": list(LABELS),
        "covariance": covariance.tolist(),
        "std": dict(zip(LABELS, std.tolist())),
        "correlation": (covariance / np.outer(std, std)).tolist(),
        "fit": {
            "method": "posterior of a least-squares fit (flat prior, Gaussian errors S): the crystal data exact, "
                      "E_v linear; its moments by importance sampling from the Laplace approximation "
                      "(J^T S^-2 J)^-1, J = dP/dtheta at theta = 1",
            "laplace_covariance": laplace.tolist(),
            "posterior_mean": posterior["mean"],
            "importance_samples": posterior["samples"],
            "effective_samples": posterior["effective_samples"],
            "properties": list(PROPERTIES), "units": list(UNITS),
            "model_values": values.tolist(),
            "room_temperature": room.tolist(),
            "zero_kelvin": [DATA[k][1] for k in PROPERTIES[:-1]] + [VACANCY[0]],
            "targets": targets,
            "target_std": s.tolist(),
            "normalized_residual": residual.tolist(),
            "jacobian": jac.tolist(),
            "jacobian_vs_central_differences": jac_check,
            "linearity_along_principal_directions": linearity,
        },
    }


def posterior_moments(crystal_props, theta0, values, jac, s, laplace, samples: int = 4000, seed: int = 0) -> dict:
    """Mean and covariance of `exp(−χ²/2)`, χ² the misfit of the data with the exact
    properties (E_v to first order, as it would need re-relaxed vacancies), by importance
    sampling from the Laplace Gaussian (wider along the sloppy direction than the target:
    the weights stay bounded)."""
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(np.asarray(theta0), laplace, size=samples)
    crystal = jax.jit(lambda t: jax.lax.map(crystal_props, t, batch_size=100))(jnp.asarray(draws))
    e_v = values[-1] + (draws - np.asarray(theta0)) @ jac[-1]  # first order
    exact = np.concatenate([np.asarray(crystal), e_v[:, None]], axis=1)
    chi2_exact = np.sum(((exact - values) / s) ** 2, axis=1)
    linear = (draws - np.asarray(theta0)) @ jac.T
    chi2_linear = np.sum((linear / s) ** 2, axis=1)
    log_w = np.where(np.all(np.isfinite(exact), axis=1), -0.5 * (chi2_exact - chi2_linear), -np.inf)
    w = np.exp(log_w - np.max(log_w))
    w /= w.sum()
    mean = w @ draws
    centred = draws - mean
    covariance = (centred * w[:, None]).T @ centred
    return {"mean": mean.tolist(), "covariance": covariance.tolist(), "samples": samples,
            "effective_samples": float(1.0 / np.sum(w**2))}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", choices=("thermal", "measured"), default="thermal",
                        help="s_i: the 300 K − 0 K difference (default) or the measurements' precision")
    args = parser.parse_args()
    doc = fit_covariance(*properties_function(crystal(), *vacancy()), targets=args.targets)
    name = "covariance.json" if args.targets == "thermal" else "covariance_measured.json"
    (HERE / name).write_text(json.dumps(doc, indent=2) + "\n")
    fit = doc["fit"]
    print("property       model    300 K     0 K     s    (model-300K)/s")
    for k, v, rt, zk, s, r in zip(fit["properties"], fit["model_values"], fit["room_temperature"],
                                  fit["zero_kelvin"], fit["target_std"], fit["normalized_residual"]):
        print(f"{k:15s}{v:8.4f}{rt:9.3f}{zk:8.3f}{s:7.3f}{r:+9.2f}")
    print("dP/dθ vs central differences (relative):", f"{fit['jacobian_vs_central_differences']:.1e}")
    print(f"posterior by importance sampling: {fit['importance_samples']} draws, effective "
          f"{fit['effective_samples']:.0f}; mean − θ̂:", np.round(np.array(fit["posterior_mean"]) - 1, 4))
    print("Laplace σ(θ):", np.round(np.sqrt(np.diag(fit["laplace_covariance"])), 4))
    print("σ(θ):", ", ".join(f"{k} {v:.4f}" for k, v in doc["std"].items()))
    print("correlation:\n", np.array2string(np.array(doc["correlation"]), precision=3))
    print("principal σ   χ² at ±1σ of the crystal data (linear model: χ²_linear)")
    for row in fit["linearity_along_principal_directions"]:
        print(f"  {row['principal_std']:.4f}   +1σ {row['chi2_plus']:.3f}  −1σ {row['chi2_minus']:.3f}  "
              f"linear {row['chi2_linear']:.3f}")
    return doc


if __name__ == "__main__":
    main()
