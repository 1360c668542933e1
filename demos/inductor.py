# %% [markdown]
# # Inductor with an E-I core of soft-magnetic composite (FE² vs a surrogate)
#
# An E core and an I bar (5 mm legs, 0.5 mm air gap) made of a composite of disks
# (mu_r = 250) in a mu_r = 1 matrix, graded from an inclusion fraction of 0.45 at the centre
# leg to 0.25 at the outer legs. A coil of 100 ampere-turns fills both windows (+J left,
# -J right). The 2D vector potential gives B and the inductance per unit depth L = 2 W / I^2.
#
# Run headless: `python demos/inductor.py [SIZE] [PROVIDERS]` (PROVIDERS comma-separated,
# default `fe,analytic`; add `cnn` when a trained model is installed) or with the environment
# variables `MAGNETOHOM_DEMO_SIZE`, `MAGNETOHOM_DEMO_PROVIDERS`, `MAGNETOHOM_DEMO_RESOLUTION`
# (default 64, or the CNN's size) and `MAGNETOHOM_DEMO_OUT` (default out/demo_inductor).

# %%
import os
import sys

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

from mpi4py import MPI

from macro.compare import compare_providers
from macro.output import write_json, write_outputs
from macro.problems import get_problem

size = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MAGNETOHOM_DEMO_SIZE", "small")
providers = (
    sys.argv[2] if len(sys.argv) > 2 else os.environ.get("MAGNETOHOM_DEMO_PROVIDERS", "fe,analytic")
).split(",")
resolution = int(os.environ.get("MAGNETOHOM_DEMO_RESOLUTION", "64"))
outdir = os.environ.get("MAGNETOHOM_DEMO_OUT", "out/demo_inductor")

# %% [markdown]
# ## Same mesh and SVEs for every provider; FE² (`fe`) is the reference

# %%
problem = get_problem("inductor", size=size, resolution=resolution, seed=0)
comparison = compare_providers(problem, providers)
summary = comparison.summary()

# %% [markdown]
# ## Inductance per unit depth and the cost of each provider

# %%
if MPI.COMM_WORLD.rank == 0:
    print(
        f"{summary['n_quadrature_points']} quadrature points with "
        f"{summary['sve_resolution']}^2 SVEs"
    )
    for name, m in summary["providers"].items():
        err = m["qoi_rel_error"]
        print(
            f"{name:<9s} L = {m['inductance_H_per_m'] * 1e6:9.4f} uH/m  "
            f"error {err:8.3%}  L2(B) error {m['l2_B_rel_error']:8.3%}  "
            f"total {m['total_s']:7.2f} s  speedup {m['speedup']:6.1f}"
        )
    for name, why in summary["unavailable"].items():
        print(f"{name:<9s} unavailable ({why})")

# %% [markdown]
# ## Outputs of the reference solve and the comparison table

# %%
files = write_outputs(comparison.results["fe"], outdir, extent=problem.extent)
if MPI.COMM_WORLD.rank == 0:
    write_json(summary, os.path.join(outdir, "inductor_compare.json"))
    print("wrote", ", ".join(files.values()))
