# %% [markdown]
# # Graded composite magnetic shield (FE² with a provider at every quadrature point)
#
# A ring of soft-magnetic composite (disks of mu_r = 250 in a mu_r = 1 matrix) surrounds a
# cavity in a uniform applied field H0 = 1 kA/m. The inclusion fraction is graded radially from
# 0.40 at the inner to 0.15 at the outer radius. Each macro quadrature point in the ring owns
# its own random SVE; a constitutive provider turns it into mu*.
#
# Run headless: `python demos/shield.py [SIZE] [PROVIDER]` or with the environment variables
# `MAGNETOHOM_DEMO_SIZE` (tiny, small, medium, large or a number; default small),
# `MAGNETOHOM_DEMO_PROVIDER` (fe, analytic, cnn, hybrid; default fe),
# `MAGNETOHOM_DEMO_RESOLUTION` (SVE pixels, default 64, or the CNN's size) and
# `MAGNETOHOM_DEMO_OUT` (output folder, default out/demo_shield).

# %%
import os
import sys

import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

from mpi4py import MPI

from macro.output import write_outputs
from macro.problems import get_problem
from macro.provider import get_provider, provider_resolution

size = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MAGNETOHOM_DEMO_SIZE", "small")
provider_name = (
    sys.argv[2] if len(sys.argv) > 2 else os.environ.get("MAGNETOHOM_DEMO_PROVIDER", "fe")
)
resolution = int(os.environ.get("MAGNETOHOM_DEMO_RESOLUTION", "64"))
outdir = os.environ.get("MAGNETOHOM_DEMO_OUT", "out/demo_shield")

# %% [markdown]
# ## The problem: mesh, material and provider
# `get_problem` builds the gmsh geometry (ring, cavity, air box) and the graded material.

# %%
problem = get_problem("shield", size=size, resolution=resolution, seed=0)
provider = get_provider(provider_name, mu_matrix=1.0, mu_inclusion=250.0, dim=2)
if provider_resolution(provider):
    problem.material = problem.material.with_resolution(provider_resolution(provider))
mesh = problem.mesh()

# %% [markdown]
# ## Solve the reduced scalar potential
# -div(mu0 mu* grad rho) = 0 with rho = -H0 . x on the box; H = -grad rho, B = mu0 mu* H.

# %%
result = problem.solve(provider)
sol = result.solution
if MPI.COMM_WORLD.rank == 0:
    print(f"provider {sol.provider}: {sol.n_quadrature_points} SVEs, energy {sol.energy:.6g} J/m")
    print(f"shielding factor |B0| / |<B>_cavity| = {result.qoi:.4f}")
    for stage, seconds in sol.timings.items():
        print(f"  {stage:<18s}{seconds:8.3f} s")

# %% [markdown]
# ## Outputs: XDMF (B, H, mu*, volume fraction) for ParaView, PNG of |B|, JSON summary

# %%
files = write_outputs(result, outdir, extent=problem.extent)
if MPI.COMM_WORLD.rank == 0:
    print("wrote", ", ".join(files.values()))
