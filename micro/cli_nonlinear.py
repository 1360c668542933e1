"""``magnetohom dataset-nl``: nonlinear datasets of saturating composites (issue 22).

Registered by :mod:`micro.cli` (``_add_dataset_nl``); shares its class options.
"""

from __future__ import annotations

import argparse

__all__: list[str] = []


def _add_dataset_nl(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dataset-nl",
        help="nonlinear HDF5 dataset: (image, H, B, tangent) of saturating composites",
        description="Like 'dataset', with saturating phase laws: every SVE is labelled with "
        "the nonlinear cell problem's B_bar, effective tangent and coenergy at "
        "N_DIR x N_MAG fields from 0 to --max-field knee fields of the composite, in all "
        "directions (micro.dataset_nl). Laws: linear:MU_R, arctan:MU_R,J_S, fk:MU_R,J_S "
        "(Frohlich-Kennelly; J_S saturation polarization in T) or table:FILE.csv (H in A/m, "
        "B in T). Resumable; 'mpirun -n K' splits the samples.",
    )
    p.add_argument("out", metavar="OUT.h5", help="dataset file (created or resumed)")
    p.add_argument("-n", type=int, required=True, metavar="N", help="number of samples")
    from micro.cli import _add_class_arguments

    _add_class_arguments(p)
    p.set_defaults(size=None)
    p.add_argument("--vf-min", type=float, default=0.2, help="smallest target (default 0.2)")
    p.add_argument("--vf-max", type=float, default=0.5, help="largest target (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--matrix-law", default="linear:1", help="matrix law (default linear:1)")
    p.add_argument(
        "--inclusion-law", default="arctan:1000,1.6", help="inclusion law (default arctan:1000,1.6)"
    )
    p.add_argument("--directions", type=int, default=8, help="field directions (default 8)")
    p.add_argument("--magnitudes", type=int, default=6, help="magnitudes per direction (6)")
    p.add_argument(
        "--max-field", type=float, default=6.0, help="largest |H| in knee fields (default 6)"
    )
    p.add_argument(
        "--spacing",
        choices=("log", "linear"),
        default="log",
        help="magnitudes uniform in log|H| from 0.01 knee fields (default) or in |H| from 0",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    p.set_defaults(handler=_run_dataset_nl)


def _run_dataset_nl(args: argparse.Namespace) -> int:
    import magnetohom.dolfinx_compat  # noqa: F401  (h5py, then DOLFINx)

    from mpi4py import MPI

    from magnetohom.errors import MagnetohomError
    from micro.cli import cell_size
    from micro.dataset_nl import generate_nl_dataset
    from micro.phase_laws import law_from_spec

    rank = MPI.COMM_WORLD.rank
    try:
        args.dim, args.size = cell_size(args)
        s = generate_nl_dataset(
            args.out,
            n_samples=args.n,
            matrix_law=law_from_spec(args.matrix_law),
            inclusion_law=law_from_spec(args.inclusion_law),
            dim=args.dim,
            size=args.size,
            radius=args.radius,
            radius_range=None if args.radius_range is None else tuple(args.radius_range),
            overlap=args.overlap,
            vf_range=(args.vf_min, args.vf_max),
            base_seed=args.seed,
            n_directions=args.directions,
            n_magnitudes=args.magnitudes,
            max_field=args.max_field,
            spacing=args.spacing,
            progress=args.progress,
        )
    except MagnetohomError:
        if rank != 0:
            return 2
        raise
    if rank == 0:
        rate = f"{s.seconds_per_sample:.3g} s per SVE" if s.n_new else "nothing new to do"
        print(
            f"{s.path}: {s.n_done}/{s.n_samples} samples done, {s.n_new} new, {rate} "
            f"({s.seconds:.1f} s on {s.ranks} rank{'s' if s.ranks > 1 else ''})",
            flush=True,
        )
    return 0
