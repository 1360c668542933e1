"""The configuration of a study: frozen dataclasses read from a TOML file.

A config is a path to a TOML file or the name of a shipped one (:data:`SHIPPED`:
``quick``, ``cpu``, ``paper`` in ``magnetohom/study/configs/``). Every key is checked: an unknown
key, a missing one or a value of the wrong type or range raises :class:`InputError` with the
dotted key (``data2d.mono.n_samples``) in a one-line message. The sections:

``[study]``          name, seed, phase permeabilities, and optionally ``ranks``: MPI ranks that
                     label each dataset (default 1; more runs it under ``mpirun -n ranks``);
``[data2d]``         resolution, radius (monodisperse) and radius range (polydisperse) in pixels,
                     and one table per 2D class (``mono``, ``poly``, ``overlap``,
                     ``overlap_poly``) with ``n_samples`` and ``vf_range``;
``[data3d]``         spheres: resolution, radius, ``n_samples``, ``vf_range``;
``[train]``          presets trained on the 2D monodisperse data, optional ``epochs`` per preset
                     (absent: the preset's own plan), ``batch_size``;
``[learning_curve]`` preset and fractions of the monodisperse data (empty: no learning curve);
``[transfer]``       classes and presets to transfer to, epochs of the frozen and fine-tune phases,
                     epochs of the from-scratch runs;
``[threed]``         presets trained on the spheres and their epochs;
``[inference]``      images per timed CNN call, FE labels timed in 2D and 3D, repeats;
``[macro]``          the demo, mesh size and providers of the FE² comparison, the CNN preset;
``[report]``         microstructure samples per class, volume-fraction bins.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from magnetohom.errors import InputError

__all__ = [
    "CLASSES_2D",
    "CLASS_TITLES",
    "PRESETS",
    "SHIPPED",
    "ClassConfig",
    "Data2DConfig",
    "Data3DConfig",
    "InferenceConfig",
    "LearningCurveConfig",
    "MacroConfig",
    "ReportConfig",
    "StudyConfig",
    "ThreeDConfig",
    "TrainConfig",
    "TransferConfig",
    "load_config",
    "parse_config",
]

#: The four 2D microstructure classes of the paper (Fig. 6), by key.
CLASSES_2D = ("mono", "poly", "overlap", "overlap_poly")
#: Human-readable class names (the 3D class is ``spheres``).
CLASS_TITLES = {
    "mono": "non-overlapping monodisperse disks",
    "poly": "non-overlapping polydisperse disks",
    "overlap": "overlapping monodisperse disks",
    "overlap_poly": "overlapping polydisperse disks",
    "spheres": "non-overlapping monodisperse spheres",
}
#: Surrogate presets (``surrogate.training``).
PRESETS = ("paper", "default")
#: Configs shipped with the package (``magnetohom/study/configs/NAME.toml``).
SHIPPED = ("quick", "cpu", "paper")
_DEMOS = ("shield", "inductor")
_MISSING = object()


def _providers() -> tuple[str, ...]:
    """Provider names of macro's registry (the one list of them)."""
    from macro.provider import available_providers

    return available_providers()


@dataclass(frozen=True)
class ClassConfig:
    """One 2D class: ``n_samples`` SVEs with target volume fractions uniform in ``vf_range``."""

    name: str
    n_samples: int
    vf_range: tuple[float, float]
    overlap: bool
    polydisperse: bool


@dataclass(frozen=True)
class Data2DConfig:
    """2D datasets: ``resolution`` px per side, disk ``radius`` / ``radius_range`` in px."""

    resolution: int
    radius: float
    radius_range: tuple[float, float]
    classes: tuple[ClassConfig, ...]

    def get(self, name: str) -> ClassConfig:
        """The class ``name`` (a key of :data:`CLASSES_2D`)."""
        return next(c for c in self.classes if c.name == name)


@dataclass(frozen=True)
class Data3DConfig:
    """3D sphere dataset."""

    resolution: int
    radius: float
    n_samples: int
    vf_range: tuple[float, float]


@dataclass(frozen=True)
class TrainConfig:
    """Training on the 2D monodisperse data; ``epochs[preset]`` None = the preset's plan."""

    presets: tuple[str, ...]
    epochs: tuple[tuple[str, int | None], ...]
    batch_size: int

    def epochs_of(self, preset: str) -> int | None:
        return dict(self.epochs).get(preset)


@dataclass(frozen=True)
class LearningCurveConfig:
    """Models of ``preset`` trained on the first ``fraction`` of the monodisperse samples."""

    preset: str
    fractions: tuple[float, ...]
    epochs: int | None


@dataclass(frozen=True)
class TransferConfig:
    """Transfer learning (conv layers frozen, then fine-tuning) against training from scratch."""

    classes: tuple[str, ...]
    presets: tuple[str, ...]
    epochs: int
    fine_tune_epochs: int
    scratch_epochs: int


@dataclass(frozen=True)
class ThreeDConfig:
    """Training on the spheres."""

    presets: tuple[str, ...]
    epochs: tuple[tuple[str, int | None], ...]

    def epochs_of(self, preset: str) -> int | None:
        return dict(self.epochs).get(preset)


@dataclass(frozen=True)
class InferenceConfig:
    """Inference timing: ``n_images`` per CNN call (best of ``repeats``), FE labels timed."""

    n_images: int
    n_fe: int
    n_fe_3d: int
    repeats: int


@dataclass(frozen=True)
class MacroConfig:
    """FE² comparison of one demo; the CNN is the monodisperse model of ``preset``."""

    demo: str
    size: str
    providers: tuple[str, ...]
    preset: str


@dataclass(frozen=True)
class ReportConfig:
    """Report options."""

    samples_per_class: int
    vf_bins: int


@dataclass(frozen=True)
class StudyConfig:
    """A whole study (see the module docstring for the sections)."""

    name: str
    description: str
    seed: int
    mu_matrix: float
    mu_inclusion: float
    data2d: Data2DConfig
    data3d: Data3DConfig
    train: TrainConfig
    learning_curve: LearningCurveConfig
    transfer: TransferConfig
    threed: ThreeDConfig
    inference: InferenceConfig
    macro: MacroConfig
    report: ReportConfig
    ranks: int = 1
    source: str = ""

    def section(self, name: str) -> dict[str, Any]:
        """JSON-able dict of a section (``"study"`` for the top-level fields)."""
        if name == "study":
            return {
                "name": self.name,
                "seed": self.seed,
                "mu_matrix": self.mu_matrix,
                "mu_inclusion": self.mu_inclusion,
            }
        return _jsonable(asdict(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """The whole config as plain JSON-able data."""
        names = ("data2d", "data3d", "train", "learning_curve", "transfer", "threed")
        study = {**self.section("study"), "description": self.description, "ranks": self.ranks}
        out = {"study": study}
        out.update({n: self.section(n) for n in (*names, "inference", "macro", "report")})
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _Table:
    """Reads the keys of one TOML table, then refuses any key left over."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise InputError(f"config: [{where}] must be a table, got {type(data).__name__}")
        self.data, self.where, self.used = data, where, set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self.used.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise InputError(f"config: missing key {self._key(key)}")
        return default

    def table(self, key: str) -> _Table:
        return _Table(self.raw(key), self._key(key))

    def integer(self, key: str, *, low: int = 0, default: Any = _MISSING) -> int | None:
        v = self.raw(key, default)
        if v is None and default is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise InputError(f"config: {self._key(key)} must be an integer >= {low}, got {v!r}")
        return int(v)

    def number(self, key: str, *, positive: bool = True) -> float:
        v = self.raw(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or (positive and not v > 0):
            raise InputError(f"config: {self._key(key)} must be a number > 0, got {v!r}")
        return float(v)

    def string(
        self, key: str, choices: tuple[str, ...] | None = None, default: Any = _MISSING
    ) -> str:
        v = self.raw(key, default)
        if not isinstance(v, str) or (choices is not None and v not in choices):
            allowed = f" (one of {', '.join(choices)})" if choices else ""
            raise InputError(f"config: {self._key(key)} must be a string{allowed}, got {v!r}")
        return v

    def names(self, key: str, choices: tuple[str, ...], *, empty: bool = True) -> tuple[str, ...]:
        v = self.raw(key)
        ok = isinstance(v, list) and all(isinstance(s, str) and s in choices for s in v)
        if not ok or len(set(v)) != len(v) or (not empty and not v):
            raise InputError(
                f"config: {self._key(key)} must be a list of distinct names from "
                f"{', '.join(choices)}{'' if empty else ' (at least one)'}, got {v!r}"
            )
        return tuple(v)

    def pair(self, key: str, *, fraction: bool) -> tuple[float, float]:
        v = self.raw(key)
        ok = isinstance(v, list) and len(v) == 2
        ok = ok and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
        if ok:
            lo, hi = float(v[0]), float(v[1])
            ok = (0.0 < lo <= hi < 1.0) if fraction else (0.0 < lo <= hi)
        if not ok:
            rule = "0 < min <= max < 1" if fraction else "0 < min <= max"
            raise InputError(f"config: {self._key(key)} must be [min, max] with {rule}, got {v!r}")
        return (lo, hi)

    def epochs(self, key: str, presets: tuple[str, ...]) -> tuple[tuple[str, int | None], ...]:
        t = _Table(self.raw(key, {}), self._key(key))
        out = tuple((p, t.integer(p, low=1, default=None)) for p in presets)
        t.done()
        return out

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            keys = ", ".join(self._key(k) for k in extra)
            raise InputError(f"config: unknown key(s) {keys}")


def _data2d(t: _Table) -> Data2DConfig:
    res = t.integer("resolution", low=8)
    radius = t.number("radius")
    rr = t.pair("radius_range", fraction=False)
    if 2 * max(radius, rr[1]) >= res:
        raise InputError(f"config: data2d radius {max(radius, rr[1]):g} too large for {res} px")
    classes = []
    for name in CLASSES_2D:
        c = t.table(name)
        classes.append(
            ClassConfig(
                name=name,
                n_samples=c.integer("n_samples", low=10),
                vf_range=c.pair("vf_range", fraction=True),
                overlap=name.startswith("overlap"),
                polydisperse=name.endswith("poly"),
            )
        )
        c.done()
    t.done()
    return Data2DConfig(res, radius, rr, tuple(classes))


def _data3d(t: _Table) -> Data3DConfig:
    res = t.integer("resolution", low=8)
    radius = t.number("radius")
    if 2 * radius >= res:
        raise InputError(f"config: data3d radius {radius:g} too large for {res} px")
    out = Data3DConfig(
        res, radius, t.integer("n_samples", low=10), t.pair("vf_range", fraction=True)
    )
    t.done()
    return out


def parse_config(data: dict[str, Any], *, source: str = "") -> StudyConfig:
    """Build a :class:`StudyConfig` from parsed TOML (a dict); see the module docstring.

    Raises
    ------
    InputError
        Unknown or missing keys, wrong types or ranges, inconsistent sections.
    """
    top = _Table(data, "")
    s = top.table("study")
    name = s.string("name")
    description = s.string("description", default="")
    seed = s.integer("seed")
    mu_m, mu_i = s.number("mu_matrix"), s.number("mu_inclusion")
    ranks = s.integer("ranks", low=1, default=1)
    s.done()
    data2d = _data2d(top.table("data2d"))
    data3d = _data3d(top.table("data3d"))

    t = top.table("train")
    presets = t.names("presets", PRESETS, empty=False)
    train = TrainConfig(presets, t.epochs("epochs", presets), t.integer("batch_size", low=1))
    t.done()

    t = top.table("learning_curve")
    fractions = t.raw("fractions")
    ok = isinstance(fractions, list) and all(
        isinstance(f, int | float) and not isinstance(f, bool) and 0 < f < 1 for f in fractions
    )
    if not ok or sorted(set(fractions)) != list(fractions):
        raise InputError(
            "config: learning_curve.fractions must be increasing numbers in (0, 1) (the full "
            f"training set is the main model), got {fractions!r}"
        )
    lc = LearningCurveConfig(
        t.string("preset", train.presets),
        tuple(float(f) for f in fractions),
        t.integer("epochs", low=1, default=None),
    )
    t.done()
    smallest = min(lc.fractions, default=1.0) * data2d.get("mono").n_samples
    if smallest < 10:
        raise InputError(
            f"config: learning_curve fraction {min(lc.fractions)} of "
            f"{data2d.get('mono').n_samples} samples leaves fewer than 10"
        )

    t = top.table("transfer")
    transfer = TransferConfig(
        classes=t.names("classes", CLASSES_2D[1:]),
        presets=t.names("presets", train.presets),
        epochs=t.integer("epochs", low=1),
        fine_tune_epochs=t.integer("fine_tune_epochs", low=0),
        scratch_epochs=t.integer("scratch_epochs", low=1),
    )
    t.done()

    t = top.table("threed")
    p3 = t.names("presets", PRESETS)
    threed = ThreeDConfig(p3, t.epochs("epochs", p3))
    t.done()

    t = top.table("inference")
    inference = InferenceConfig(
        t.integer("n_images", low=1),
        t.integer("n_fe", low=1),
        t.integer("n_fe_3d", low=0),
        t.integer("repeats", low=1),
    )
    t.done()

    t = top.table("macro")
    macro = MacroConfig(
        demo=t.string("demo", _DEMOS),
        size=t.string("size"),
        providers=t.names("providers", _providers()),
        preset=t.string("preset", train.presets),
    )
    if "cnn" not in macro.providers:
        raise InputError(f"config: macro.providers must include cnn, got {list(macro.providers)}")
    t.done()

    t = top.table("report")
    report = ReportConfig(t.integer("samples_per_class", low=1), t.integer("vf_bins", low=1))
    t.done()
    top.done()
    return StudyConfig(
        name=name,
        description=description,
        seed=seed,
        mu_matrix=mu_m,
        mu_inclusion=mu_i,
        data2d=data2d,
        data3d=data3d,
        train=train,
        learning_curve=lc,
        transfer=transfer,
        threed=threed,
        inference=inference,
        macro=macro,
        report=report,
        ranks=ranks,
        source=source,
    )


def shipped_path(name: str) -> Path:
    """Path of a shipped config by name."""
    return Path(str(resources.files("magnetohom.study") / "configs" / f"{name}.toml"))


def load_config(config: str | Path) -> StudyConfig:
    """Read a config file, or a shipped config by name (:data:`SHIPPED`).

    Raises
    ------
    InputError
        No such file or shipped name, invalid TOML, or an invalid config.
    """
    path = Path(config)
    if not path.is_file():
        if str(config) in SHIPPED:
            path = shipped_path(str(config))
        else:
            raise InputError(
                f"no config file {config} and no shipped config of that name "
                f"(shipped: {', '.join(SHIPPED)})"
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"config {path} is not a text (UTF-8 TOML) file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config {path}: invalid TOML: {exc}") from None
    return parse_config(data, source=str(path))
