"""The on-disk form of a trained surrogate: a directory with Keras members and metadata.

Layout of ``MODEL_DIR``::

    metadata.json     what the model needs to be used and reproduced (see below)
    history.json      loss curves: {"members": [{"loss": [...], "val_loss": [...], "lr": [...]}]}
    model_0.keras     ensemble member 0 (weights only, no optimizer state)
    model_1.keras     ...

``metadata.json`` holds at least ``format`` (``"magnetohom-surrogate"``), ``format_version``,
``preset``, ``model_options``, ``dim``, ``resolution``, ``mu_matrix``, ``mu_inclusion``,
``vf_range``, ``target`` (:class:`surrogate.data.TargetTransform`), ``members`` (file names),
``split``, ``dataset`` (path, sha256; ``extra_train``: the files that only joined the training
split, each with path, sha256 and sample count), ``command`` and ``training`` (epochs, time, ...).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from magnetohom.errors import InputError
from surrogate.data import TargetTransform

__all__ = [
    "FORMAT",
    "ModelBundle",
    "at_resolution",
    "check_member_file",
    "copy_layer_weights",
    "load_bundle",
    "merge_bundles",
    "moves_to",
    "read_metadata",
    "save_bundle",
    "why_not_moves",
    "write_json",
]

logger = logging.getLogger(__name__)

FORMAT = "magnetohom-surrogate"
FORMAT_VERSION = 1
_REQUIRED = ("preset", "dim", "resolution", "mu_matrix", "mu_inclusion", "target", "members")


@dataclass(frozen=True)
class ModelBundle:
    """A loaded surrogate: its Keras members and metadata.

    Attributes
    ----------
    path
        The model directory.
    metadata
        Contents of ``metadata.json``.
    members
        The ensemble members (``keras.Model``), at least one.
    """

    path: Path
    metadata: dict[str, Any]
    members: tuple[Any, ...]

    @property
    def dim(self) -> int:
        return int(self.metadata["dim"])

    @property
    def resolution(self) -> int:
        return int(self.metadata["resolution"])

    @property
    def mu_matrix(self) -> float:
        return float(self.metadata["mu_matrix"])

    @property
    def mu_inclusion(self) -> float:
        return float(self.metadata["mu_inclusion"])

    @property
    def preset(self) -> str:
        return str(self.metadata["preset"])

    @property
    def vf_range(self) -> tuple[float, float]:
        lo, hi = self.metadata.get("vf_range", (0.0, 1.0))
        return float(lo), float(hi)

    @property
    def target(self) -> TargetTransform:
        return TargetTransform.from_dict(self.metadata["target"])

    @property
    def name(self) -> str:
        """The name the user knows the model by: its directory's name (``default``,
        ``out/model`` -> ``model``), not the run name recorded in the metadata."""
        return self.path.name or str(self.path)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def save_bundle(
    path: str | Path,
    members: Sequence[Any],
    metadata: dict[str, Any],
    *,
    history: dict[str, Any] | None = None,
) -> Path:
    """Write a model directory (members without optimizer state, metadata, history).

    Returns the directory path.
    """
    import keras

    from surrogate import coarse_solve, layers  # noqa: F401  (registers the custom layers)

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    names = []
    for k, model in enumerate(members):
        name = f"model_{k}.keras"
        clean = keras.models.clone_model(model)
        clean.set_weights(model.get_weights())
        tmp = path / f".{name}.tmp.keras"
        clean.save(tmp)
        os.replace(tmp, path / name)
        names.append(name)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata, "members": names}
    write_json(path / "metadata.json", meta)
    if history is not None:
        write_json(path / "history.json", history)
    logger.info("saved %d member(s) to %s", len(names), path)
    return path


def check_member_file(file: Path, model: Path) -> None:
    """Refuse a member that is not a complete ``.keras`` archive (truncated, empty, not zip).

    A ``.keras`` file is a zip archive with ``config.json`` and the weights; every entry's CRC
    is checked, so a truncated or damaged copy is named here instead of failing later in Keras
    (with "File not found") or being packed into an ensemble.

    Raises
    ------
    InputError
        ``cannot read model MODEL: member NAME is ...``.
    """
    import zipfile

    where = f"cannot read model {model}: member file {file.name}"
    if not file.is_file():
        raise InputError(f"{where} is missing")
    try:
        with zipfile.ZipFile(file) as z:
            names = set(z.namelist())
            damaged = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        size = file.stat().st_size
        raise InputError(
            f"{where} is truncated or not a .keras file ({size} bytes: {exc})"
        ) from None
    if damaged is not None:
        raise InputError(f"{where} is damaged (CRC error in {damaged})")
    if "config.json" not in names:
        raise InputError(f"{where} is not a Keras model archive (no config.json)")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read and check ``metadata.json`` of a model directory.

    Raises
    ------
    InputError
        Missing, unreadable or incomplete metadata.
    """
    path = Path(path)
    file = path / "metadata.json"
    if not file.exists():
        raise InputError(f"cannot read model {path}: no metadata.json (not a model directory)")
    try:
        meta = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read model {path}: metadata.json: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"cannot read model {path}: metadata.json is not a {FORMAT} file")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise InputError(f"cannot read model {path}: metadata.json lacks {', '.join(missing)}")
    return meta


def load_bundle(path: str | Path) -> ModelBundle:
    """Load a model directory (or a file inside it).

    Raises
    ------
    InputError
        ``cannot read model PATH: ...`` if the metadata or a member file is missing or corrupt,
        or a member has NaN or infinite weights (its outputs would be silently clipped).
    """
    import keras

    from surrogate import coarse_solve, layers  # noqa: F401  (registers the custom layers)

    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.exists():
        raise InputError(f"cannot read model {path}: no such directory")
    meta = read_metadata(path)
    members = []
    for name in meta["members"]:
        file = path / name
        check_member_file(file, path)
        try:
            members.append(keras.saving.load_model(file, compile=False))
        except Exception as exc:  # zip, h5 or deserialization errors of all kinds
            msg = " ".join(str(exc).split())[:200]
            raise InputError(f"cannot read model {file}: {type(exc).__name__}: {msg}") from None
    if not members:
        raise InputError(f"cannot read model {path}: no members listed")
    for name, model in zip(meta["members"], members):
        for w in model.weights:
            if not np.all(np.isfinite(np.asarray(w))):
                raise InputError(
                    f"cannot read model {path}: member {name} has non-finite weights "
                    f"({w.path if hasattr(w, 'path') else w.name})"
                )
    expected = (meta["resolution"],) * int(meta["dim"]) + (1,)
    for name, model in zip(meta["members"], members):
        if tuple(model.input_shape[1:]) != expected:
            raise InputError(
                f"cannot read model {path}: {name} takes {model.input_shape[1:]}, "
                f"metadata says {expected}"
            )
    return ModelBundle(path=path, metadata=meta, members=tuple(members))


# what members of one ensemble must share: the network, the data and its split
_SAME = (
    "preset",
    "model_options",
    "dim",
    "resolution",
    "mu_matrix",
    "mu_inclusion",
    "components",
    "target",
    "geometry",
    "split",
)


def merge_bundles(
    out: str | Path, sources: Sequence[str | Path], *, command: str | None = None
) -> Path:
    """Join independently trained models into one deep ensemble directory.

    The member files are copied as they are (no Keras import); the metadata is the first
    source's, with every member listed, the volume-fraction range widened to cover all sources,
    the extra training files of all sources listed, and each source's name, command and
    training record kept under ``training["sources"]``.

    Parameters
    ----------
    out
        Directory to write; must not be one of ``sources``. If it exists it must be empty or
        an ensemble of the same sources (then it is replaced); another model is refused.
        Written under a temporary name and renamed, so a failure leaves nothing behind.
    sources
        Two or more model directories (single models or ensembles).
    command
        The command line to record (default: a ``magnetohom ensemble`` line).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    InputError
        Fewer than two sources, ``out`` among them, an unreadable source, or sources that differ
        in network, target normalisation, phase μ, geometry, dataset or split (the message names
        the first differing field).
    """
    out = Path(out)
    if len(sources) < 2:
        raise InputError(f"an ensemble needs at least two models, got {len(sources)}")
    paths = [Path(s) for s in sources]
    if any(out.resolve() == p.resolve() for p in paths):
        raise InputError(f"ensemble output {out} is one of its sources")
    metas = [read_metadata(p) for p in paths]
    first = metas[0]
    for p, meta in zip(paths[1:], metas[1:]):
        for key in _SAME:
            if meta.get(key) != first.get(key):
                raise InputError(
                    f"cannot join {paths[0]} and {p} into one ensemble: they differ in {key}"
                )
        sha = (meta.get("dataset") or {}).get("sha256")
        if sha != (first.get("dataset") or {}).get("sha256"):
            raise InputError(
                f"cannot join {paths[0]} and {p} into one ensemble: trained on other data"
            )
    for p, meta in zip(paths, metas):
        for name in meta["members"]:
            check_member_file(p / name, p)
    _check_ensemble_out(out, paths)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_ensemble(tmp, out, paths, metas, command)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("joined models %s into %s", ", ".join(map(str, paths)), out)
    return out


def _check_ensemble_out(out: Path, paths: Sequence[Path]) -> None:
    """``out`` may be replaced only if absent, an empty directory, or an ensemble of the same
    sources (a rerun of the same command); never another model or a file."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"ensemble output {out} exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        return
    try:
        meta = read_metadata(out)
    except InputError:
        raise InputError(
            f"ensemble output {out} exists and is not a model directory; choose another -o"
        ) from None
    sources = [str(s.get("path")) for s in (meta.get("training") or {}).get("sources") or []]
    if sources != [str(p) for p in paths]:
        made = meta.get("command") or "not made by magnetohom ensemble"
        raise InputError(
            f"ensemble output {out} holds another model ({made}); remove it or choose another -o"
        )


def _write_ensemble(
    tmp: Path, out: Path, paths: Sequence[Path], metas: Sequence[dict], command: str | None
) -> None:
    """The ensemble directory's contents, written into ``tmp``."""
    tmp.mkdir(parents=True)
    first = metas[0]
    names: list[str] = []
    history: list[Any] = []
    sources_info = []
    for p, meta in zip(paths, metas):
        for name in meta["members"]:
            new = f"model_{len(names)}.keras"
            shutil.copyfile(p / name, tmp / new)
            names.append(new)
        hist_file = p / "history.json"
        if hist_file.exists():
            history += json.loads(hist_file.read_text()).get("members", [])
        sources_info.append(
            {
                "name": meta.get("name", p.name),
                "path": str(p),
                "members": len(meta["members"]),
                "command": meta.get("command"),
                "training": meta.get("training"),
            }
        )
    lo = min(float(m["vf_range"][0]) for m in metas)
    hi = max(float(m["vf_range"][1]) for m in metas)
    seconds = sum(float((m.get("training") or {}).get("seconds", 0.0)) for m in metas)
    dataset = dict(first.get("dataset") or {})
    extra = {e["sha256"]: e for m in metas for e in (m.get("dataset") or {}).get("extra_train", [])}
    if extra:  # what any member was trained on, so evaluate refuses all of it
        dataset["extra_train"] = list(extra.values())
    if command is None:
        command = " ".join(["magnetohom", "ensemble", "-o", str(out), *map(str, paths)])
    meta = {
        **first,
        "name": out.name,
        "vf_range": [lo, hi],
        "dataset": dataset,
        "ensemble": len(names),
        "members": names,
        "command": command,
        "training": {"seconds": seconds, "sources": sources_info},
    }
    write_json(tmp / "metadata.json", meta)
    write_json(tmp / "history.json", {"members": history})


def copy_layer_weights(source: Any, model: Any, *, skip: Sequence[str] = ()) -> None:
    """Copy the weights of each layer of ``model`` from the same-named layer of ``source``.

    Transfer learning (:func:`surrogate.training.train` with ``init``). Layers named in ``skip``
    keep the weights they were built with; each must be a layer of ``model`` that has weights.

    Raises
    ------
    InputError
        A name in ``skip`` is not a weighted layer of ``model``, or ``source`` lacks a layer of
        ``model`` (same name, same weight shapes).
    """
    weighted = {layer.name for layer in model.layers if layer.weights}
    unknown = [name for name in skip if name not in weighted]
    if unknown:
        raise InputError(
            f"no layer with weights named {unknown[0]!r} to re-initialise; "
            f"the model has {', '.join(sorted(weighted))}"
        )
    by_name = {layer.name: layer for layer in source.layers}
    for layer in model.layers:
        if not layer.weights or layer.name in skip:
            continue
        src = by_name.get(layer.name)
        if src is None or [w.shape for w in src.weights] != [w.shape for w in layer.weights]:
            raise InputError(f"initial model has no layer {layer.name!r} of matching shape")
        layer.set_weights(src.get_weights())


def why_not_moves(bundle: ModelBundle, resolution: int) -> str | None:
    """Why ``bundle``'s weights cannot serve cells of side ``resolution`` (None if they can).

    Returns
    -------
    str or None
        One clause for an error message: the preset, the head, the stem that does not divide
        the side (an odd side for a stem of 2), or too few blocks.
    """
    from surrogate.models import auto_stem, model_options

    if bundle.preset != "default":
        return f"a {bundle.preset}-preset network is tied to its cell size"
    opts = model_options("default", bundle.metadata.get("model_options") or {})
    if opts.head != "solve":
        return "only coarse-solve models (head='solve') move to another cell size"
    stem = opts.stem if opts.stem is not None else auto_stem(bundle.resolution, bundle.dim)
    if opts.stem is None and auto_stem(resolution, bundle.dim) != stem:
        return f"its automatic stem ({stem}) would change at {resolution} px"
    if resolution % stem:
        return f"{resolution} px is not a multiple of its stem ({stem} px per block)"
    if resolution // stem < 3:
        return f"{resolution} px gives fewer than 3 blocks of {stem} px per side"
    return None


def moves_to(bundle: ModelBundle, resolution: int) -> bool:
    """Whether ``bundle``'s weights serve cells of side ``resolution`` as well.

    True for a coarse-solve model (``head="solve"``: convolutions on the block grid and a solve
    on it, no layer tied to the cell size) whose stem divides ``resolution`` into at least 3
    blocks per side. The inclusions keep their size in pixels, so a larger cell is more of the
    same material (:func:`at_resolution`).
    """
    return why_not_moves(bundle, resolution) is None


def at_resolution(bundle: ModelBundle, resolution: int) -> ModelBundle:
    """``bundle`` with its members rebuilt for cells of side ``resolution``, same weights.

    The returned bundle's metadata says ``resolution`` (and keeps the training cell size as
    ``trained_resolution``), so that providers accept those cells; nothing is written to disk.

    Raises
    ------
    InputError
        The model is not one that moves (:func:`moves_to`).
    """
    from surrogate.models import build_model

    resolution = int(resolution)
    if resolution == bundle.resolution:
        return bundle
    why = why_not_moves(bundle, resolution)
    if why is not None:
        raise InputError(
            f"model {bundle.name!r} cannot take cells of {resolution} px (trained on "
            f"{bundle.resolution} px): {why}"
        )
    meta = dict(bundle.metadata)
    members = []
    for k, member in enumerate(bundle.members):
        model = build_model(
            bundle.preset,
            dim=bundle.dim,
            resolution=resolution,
            mu_matrix=bundle.mu_matrix,
            mu_inclusion=bundle.mu_inclusion,
            options=meta.get("model_options") or {},
            rng=k,
        )
        copy_layer_weights(member, model)
        members.append(model)
    meta["trained_resolution"] = meta.get("trained_resolution", bundle.resolution)
    meta["resolution"] = resolution
    return ModelBundle(path=bundle.path, metadata=meta, members=tuple(members))
