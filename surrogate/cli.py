"""``magnetohom train | ensemble | evaluate | predict``: the surrogate's command line.

TensorFlow is imported inside the handlers only, so ``magnetohom --help`` stays fast.

Examples::

    magnetohom train data/mono256.h5 -o models/mono --epochs 200 --ensemble 3
    magnetohom train data/poly256.h5 -o models/poly --init models/mono --freeze conv
    magnetohom ensemble -o models/mono_ens models/mono_seed1 models/mono_seed2
    magnetohom evaluate models/mono data/mono256.h5 -o figs/mono --json
    magnetohom predict --model models/mono sve_0001.png sve_0002.png --json
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from magnetohom.errors import InputError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``ensemble``, ``evaluate``, ``train-law`` and ``predict`` commands."""
    _add_train(subparsers)
    _add_ensemble(subparsers)
    _add_evaluate(subparsers)
    _add_train_law(subparsers)
    from surrogate.predict_cli import add_predict

    add_predict(subparsers, _import_tensorflow)


# ----------------------------------------------------------------------------------------------
# train


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a CNN surrogate on a dataset file",
        description="Train a CNN on the labeled samples of DATASET (70/15/15 split) and write a "
        "model directory. Re-running the same command resumes from its checkpoints.",
    )
    p.add_argument("dataset", metavar="DATASET.h5", help="HDF5 dataset (magnetohom dataset)")
    p.add_argument(
        "-o", "--out", required=True, metavar="MODEL_DIR", help="model directory to write"
    )
    p.add_argument(
        "--preset",
        choices=("default", "paper"),
        default=None,
        help="architecture (default: default)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs (default: 200; paper 300; paper transfer 100)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="samples per step (default 32)")
    p.add_argument("--learning-rate", type=float, default=None, help="initial Adam learning rate")
    p.add_argument(
        "--init", metavar="MODEL", default=None, help="start from this model (transfer learning)"
    )
    p.add_argument(
        "--freeze",
        choices=("conv",),
        default=None,
        help="keep the feature conv layers of --init fixed (train the head only)",
    )
    p.add_argument(
        "--fine-tune-epochs", type=int, default=None, help="then unfreeze all at lr/10 for N epochs"
    )
    p.add_argument(
        "--reinit",
        action="append",
        default=[],
        metavar="LAYER",
        help="a layer of --init not copied, started from fresh weights (e.g. face_logits); "
        "repeatable",
    )
    p.add_argument(
        "--ensemble", type=int, default=1, metavar="K", help="train K members (uncertainty)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights, batches, augmentation")
    p.add_argument(
        "--split-seed", type=int, default=None, help="seed of the split (default: --seed)"
    )
    aug = p.add_mutually_exclusive_group()
    aug.add_argument(
        "--augment", dest="augment", action="store_true", default=None, help="force augmentation"
    )
    aug.add_argument("--no-augment", dest="augment", action="store_false", help="no augmentation")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, VALUE as JSON (e.g. stem=4, filters=[16,32,64,64]); repeatable",
    )
    from surrogate.training import LOSSES  # no TensorFlow at import

    p.add_argument(
        "--loss",
        choices=LOSSES,
        default=None,
        help="loss of the scaled targets (default: mse; mae is closer to MAPE)",
    )
    p.add_argument(
        "--max-samples", type=int, default=None, help="use only the first N labeled samples"
    )
    p.add_argument(
        "--extra-train",
        action="append",
        default=[],
        metavar="DATA.h5",
        help="more labeled samples for the training split only (validation and test stay "
        "DATASET's); repeatable",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_train)


def _parse_options(items: list[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` items as a dict; VALUE is JSON, or a bare word taken as a string.

    A VALUE that starts like JSON (``[``, ``{``, ``"``, a digit, a sign) but does not parse is
    an error, not a string: ``filters=[16,`` must not reach the model builder.
    """
    opts: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            opts[key] = json.loads(value)
        except ValueError as exc:
            text = value.strip()
            if not text or text[0] in '[{"-+.0123456789':
                raise InputError(f"--option {key}: {value!r} is not valid JSON ({exc})") from None
            opts[key] = value
    return opts


def _import_tensorflow(args: argparse.Namespace) -> None:
    """Import TensorFlow first (before anything that may load DOLFINx), quietly unless ``-v``
    (:func:`magnetohom.quiet.import_tensorflow`)."""
    from magnetohom.quiet import import_tensorflow

    import_tensorflow(getattr(args, "verbose", 0))


def _command_of(args: argparse.Namespace) -> str:
    """The ``magnetohom train`` command line equivalent to ``args`` (recorded in the metadata)."""
    words = ["magnetohom", "train", args.dataset, "-o", args.out]
    for flag, value in [
        ("--preset", args.preset),
        ("--epochs", args.epochs),
        ("--batch-size", args.batch_size),
        ("--learning-rate", args.learning_rate),
        ("--init", args.init),
        ("--freeze", args.freeze),
        ("--fine-tune-epochs", args.fine_tune_epochs),
        ("--ensemble", args.ensemble if args.ensemble != 1 else None),
        ("--seed", args.seed if args.seed != 0 else None),
        ("--split-seed", args.split_seed),
        ("--loss", args.loss),
        ("--max-samples", args.max_samples),
    ]:
        if value is not None:
            words += [flag, str(value)]
    if args.augment is not None:
        words.append("--augment" if args.augment else "--no-augment")
    for item in args.option:
        words += ["--option", item]
    for path in args.extra_train:
        words += ["--extra-train", path]
    for name in args.reinit:
        words += ["--reinit", name]
    return shlex.join(words)


def _train(args: argparse.Namespace) -> int:
    from magnetohom.paths import check_output_dir

    check_output_dir(args.out, "model directory")
    _import_tensorflow(args)
    from surrogate.training import train

    result = train(
        args.dataset,
        out=args.out,
        preset=args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        init=args.init,
        freeze=args.freeze,
        reinit=args.reinit,
        fine_tune_epochs=args.fine_tune_epochs,
        loss=args.loss,
        ensemble=args.ensemble,
        seed=args.seed,
        split_seed=args.split_seed,
        augment=args.augment,
        options=_parse_options(args.option) or None,
        max_samples=args.max_samples,
        extra_train=args.extra_train,
        progress=not args.quiet,
        command=_command_of(args),
    )
    meta = result.metadata
    split = meta.get("split", {})
    print(f"model: {result.model_dir}")
    print(
        f"preset {meta['preset']}, {meta['dim']}D {meta['resolution']} px, "
        f"{meta['ensemble']} member(s), "
        f"split {split.get('n_train')}/{split.get('n_val')}/{split.get('n_test')}"
    )
    for extra in meta["dataset"].get("extra_train", []):
        print(f"extra training samples: {extra['n_labeled']} from {extra['path']}")
    for k, (ep, loss) in enumerate(zip(result.epochs_run, result.best_val_loss)):
        print(f"member {k}: {ep} epochs, best validation loss {loss:.4g}")
    print(f"training time: {meta['training']['seconds']:.1f} s")
    return 0


# ----------------------------------------------------------------------------------------------
# ensemble


def _add_ensemble(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ensemble",
        help="join independently trained models into one deep ensemble",
        description="Copy the members of MODEL... (same network, data and split; for example "
        "runs of `magnetohom train` with different --seed) into one model directory whose "
        "predictions are the members' mean and whose spread is their scatter.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help="model directories or names")
    p.add_argument("-o", "--out", required=True, metavar="MODEL_DIR", help="directory to write")
    p.set_defaults(handler=_ensemble)


def _ensemble(args: argparse.Namespace) -> int:
    from magnetohom.paths import check_output_dir
    from surrogate.bundle import merge_bundles, read_metadata
    from surrogate.registry import resolve_model

    check_output_dir(args.out, "ensemble output")
    sources = [resolve_model(m) for m in args.models]
    command = shlex.join(["magnetohom", "ensemble", "-o", args.out, *args.models])
    out = merge_bundles(args.out, sources, command=command)
    meta = read_metadata(out)
    print(f"model: {out} ({meta['ensemble']} members from {len(sources)} models)")
    return 0


# ----------------------------------------------------------------------------------------------
# evaluate


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="MAPE and R^2 of a surrogate on a dataset, with parity and loss plots",
        description="Evaluate MODEL on the test split of DATASET (all labeled samples if "
        "DATASET is not the training file): MAPE and R^2 per component; "
        "-o writes parity.png and loss.png.",
    )
    p.add_argument("model", metavar="MODEL", help="model directory or registry name")
    p.add_argument("dataset", metavar="DATASET.h5", help="HDF5 dataset with labels")
    p.add_argument("-o", "--out", metavar="FIGDIR", default=None, help="write the figures there")
    p.add_argument("--split", choices=("test", "val", "train", "all"), default="test")
    p.add_argument("--tta", action="store_true", help="average over the grid symmetries")
    p.add_argument(
        "--any-size",
        action="store_true",
        help="coarse-solve models: the same weights on the dataset's cell size",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    if args.out:
        from magnetohom.paths import check_output_dir

        check_output_dir(args.out, "figure directory")
    _import_tensorflow(args)
    from surrogate.evaluation import evaluate

    ev = evaluate(args.model, args.dataset, split=args.split, tta=args.tta, any_size=args.any_size)
    figures = []
    if args.out:
        from surrogate.plots import write_figures

        figures = [str(p) for p in write_figures(ev, args.out)]
    if args.json:
        print(json.dumps({**ev.to_dict(), "figures": figures}))
        return 0
    print(f"model {ev.model} on {ev.dataset}: {ev.split} split, N = {ev.n}")
    print(f"{'component':>10} {'MAPE %':>9} {'R2':>9}")
    for name, e, r, s in zip(ev.components, ev.mape, ev.r2, ev.mape_scale):
        note = "" if s == "value" else "  (error / mean eigenvalue)"
        print(f"{name:>10} {e:9.3f} {r:9.5f}{note}")
    for f in figures:
        print(f"wrote {f}")
    return 0


# ----------------------------------------------------------------------------------------------
# train-law


def _add_train_law(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-law",
        help="train the learned convex effective law on a nonlinear dataset (dataset-nl)",
        description="Train surrogate.convex_law on DATASET (from 'magnetohom dataset-nl'; "
        "several files of one composite are joined), "
        "holding out --test-fraction of the microstructures; prints the held-out errors of B "
        "(relative to |B|) and of the tangent, and writes the law to OUT.",
    )
    p.add_argument("dataset", nargs="+", metavar="DATASET.h5", help="nonlinear dataset(s)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="law directory")
    p.add_argument("--epochs", type=int, default=300, help="epochs (default 300)")
    p.add_argument("--terms", type=int, default=16, help="saturating terms (default 16)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held out (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="split and initialisation seed")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_train_law)


def _train_law(args: argparse.Namespace) -> int:
    _import_tensorflow(args)
    from dataclasses import asdict

    from magnetohom.errors import InputError
    from surrogate.convex_law import ConvexLawOptions, train_convex_law

    if args.epochs < 1 or args.terms < 1:
        raise InputError(f"epochs and terms must be >= 1: got {args.epochs}, {args.terms}")
    opts = ConvexLawOptions(terms=args.terms, epochs=args.epochs, seed=args.seed)
    law, summary = train_convex_law(
        args.dataset, options=opts, test_fraction=args.test_fraction, rng=args.seed
    )
    out = law.save(args.out)
    if args.json:
        print(json.dumps({**asdict(summary), "out": str(out)}))
        return 0
    print(
        f"{out}: held-out B error mean {100 * summary.b_error_mean:.2f} %, max "
        f"{100 * summary.b_error_max:.2f} %; tangent mean {100 * summary.tangent_error_mean:.2f}"
        f" %, max {100 * summary.tangent_error_max:.2f} % ({summary.n_train} train / "
        f"{summary.n_test} test microstructures, {summary.seconds:.0f} s)"
    )
    return 0
