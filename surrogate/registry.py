"""Pretrained models shipped in the package, by name, and :func:`load_model` for names or paths.

Pretrained models live in ``surrogate/models/<name>/`` (the layout of :mod:`surrogate.bundle`):

* ``general`` -- any 2D two-phase image of any size and any pair of phase permeabilities, with
  an error bound per answer (:mod:`surrogate.general`; ``magnetohom predict``'s default);
* ``default`` (also ``disks``) -- the specialist for 2D non-overlapping monodisperse disks of
  radius 8 at 256^2 and mu 1/250 (the CNN provider's default);
* ``polydisperse`` -- transfer-learned from ``default`` to polydisperse disks;
* ``overlapping`` -- overlapping disks, a network with a coarse-grid solve head (``head="solve"``
  on a 128^2 grid, :mod:`surrogate.coarse_solve`), transfer-learned from a monodisperse network
  of the same kind (head first, then every layer);
* ``overlapping-transfer`` -- transfer-learned from ``default`` to overlapping disks (plain CNN:
  about 45 times faster than ``overlapping``, about eight times its error);
* ``spheres`` -- 3D non-overlapping monodisperse spheres, 48^3 voxels, a coarse-solve network
  (``head="solve"`` on a 24^3 grid; one member, so a spread only with test-time augmentation);
  with ``any_size`` it also takes larger cells of the same spheres (100^3: about 0.55 % MAPE);
* ``fast`` -- a light model of the ``default`` class (block-bounds stem 8, 3 convolutions; about
  3.5x faster, about 0.9 % MAPE instead of 0.6 %) for FE² runs where mu* errors average out.

Their weights are produced by this project's own ``magnetohom train`` runs (the command is in
each ``metadata.json``). The registry lists whatever model directories are present; asking for a
known name that is not installed gives an error that says how to get one.
"""

from __future__ import annotations

from pathlib import Path

from magnetohom.errors import InputError
from surrogate.bundle import ModelBundle, load_bundle

__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "GENERAL_MODEL",
    "KNOWN_NAMES",
    "MODELS_DIR",
    "available_models",
    "is_general",
    "load_model",
    "resolve_model",
]

#: Directory of the pretrained models inside the package.
MODELS_DIR = Path(__file__).resolve().parent / "models"
#: Names of the models the project ships.
KNOWN_NAMES = (
    "general",
    "disks",
    "default",
    "polydisperse",
    "overlapping",
    "overlapping-transfer",
    "fast",
    "spheres",
)
#: Other names of shipped models: ``disks`` is the specialist for the paper's disks.
ALIASES = {"disks": "default"}
#: Model of the specialist CNN provider when none is given.
DEFAULT_MODEL = "default"
#: Model of ``magnetohom predict`` when none is given.
GENERAL_MODEL = "general"


def available_models() -> dict[str, Path]:
    """Installed pretrained models: name -> directory (those holding a ``metadata.json``)."""
    if not MODELS_DIR.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(MODELS_DIR.iterdir())
        if p.is_dir() and (p / "metadata.json").is_file()
    }


def resolve_model(name_or_path: str | Path | None = None) -> Path:
    """Directory of a model given by registry name or by path (``None``: the default model).

    A path (directory, or a file inside one) wins over a name. Raises :class:`InputError` when
    neither exists.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    path = Path(name_or_path)
    if path.exists():
        return path.parent if path.is_file() else path
    name = ALIASES.get(str(name_or_path), str(name_or_path))
    installed = available_models()
    if name in installed:
        return installed[name]
    if name in KNOWN_NAMES or ("/" not in name and "\\" not in name and "." not in name):
        have = ", ".join(installed) or "none"
        raise InputError(
            f"pretrained model {name!r} is not installed (expected {MODELS_DIR / name}; installed: "
            f"{have}); train one with `magnetohom train` or pass a model directory"
        )
    raise InputError(f"cannot read model {name}: no such file or directory")


def is_general(name_or_path: str | Path | None) -> bool:
    """True when the model is a general model (:mod:`surrogate.general`)."""
    import json

    meta = resolve_model(name_or_path) / "metadata.json"
    try:
        return json.loads(meta.read_text()).get("kind") == "general"
    except (OSError, ValueError):
        return False


def load_model(name_or_path: str | Path | None = None) -> ModelBundle:
    """Load a model by registry name or path; see :func:`surrogate.bundle.load_bundle`.

    A general model (:mod:`surrogate.general`) is not a bundle of specialist networks: asking for
    one here is an :class:`InputError` that says where it is used.
    """
    if is_general(name_or_path):
        raise InputError(
            f"model {str(name_or_path)!r} is a general model: use it through `magnetohom predict` "
            "or surrogate.general.GeneralProvider (macro: --provider general or hybrid)"
        )
    return load_bundle(resolve_model(name_or_path))
