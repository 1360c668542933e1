"""A resumable graph of stages with a JSON state file in the study directory.

A :class:`Stage` has a name, the stages it depends on, JSON-able parameters (its part of the
config), the output paths it writes (relative to the study directory) and a function
``run(ctx) -> dict`` whose JSON-able result is stored in the state file.

Fingerprints: a stage's fingerprint is the SHA-256 of its name, parameters and the
fingerprints of its dependencies, so a change anywhere upstream changes everything downstream.

:meth:`Pipeline.run` runs the selected stages (and whatever they depend on) in dependency order.
A stage is *skipped* when its record in ``state.json`` says ``done`` with the current fingerprint
and all its outputs exist. Otherwise it runs; when its recorded fingerprint differs (the config
changed) or it is forced, its old outputs are deleted first. A stage that was killed stays
``running`` in the state file and runs again with its outputs kept, so stages that resume on
their own (datasets, training checkpoints) continue where they stopped. The state file is
replaced atomically after every change; a lock file keeps two runs out of one directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from magnetohom.errors import InputError

__all__ = [
    "STATE_FILE",
    "Pipeline",
    "Stage",
    "StageContext",
    "load_state",
    "to_jsonable",
]

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
_FORMAT = "magnetohom-study-state"


@dataclass(frozen=True)
class Stage:
    """One step of a study.

    Attributes
    ----------
    name : str
        Unique, e.g. ``"train.mono.paper"``.
    run : callable
        ``run(ctx: StageContext) -> dict`` (JSON-able result).
    params : mapping
        JSON-able parameters; part of the fingerprint.
    deps : tuple of str
        Names of the stages whose results it needs.
    outputs : tuple of str
        Paths (files or directories) relative to the study directory that it writes.
    """

    name: str
    run: Callable[[StageContext], dict[str, Any]]
    params: Mapping[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageContext:
    """What a stage's ``run`` receives: the study directory and the results of its deps."""

    root: Path
    stage: Stage
    results: Mapping[str, dict[str, Any]]

    def path(self, rel: str) -> Path:
        """Absolute path of ``rel`` in the study directory (parents created)."""
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def to_jsonable(value: Any) -> Any:
    """Plain JSON data from numpy scalars/arrays, tuples, Paths and dataclass-free containers."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_state(root: str | os.PathLike) -> dict[str, Any]:
    """The state file of a study directory (an empty state if there is none).

    Raises
    ------
    InputError
        The file exists but is not a study state.
    """
    path = Path(root) / STATE_FILE
    if not path.exists():
        return {"format": _FORMAT, "version": 1, "stages": {}, "runs": []}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not readable as JSON ({exc}); move it away") from None
    if state.get("format") != _FORMAT:
        raise InputError(f"{path} is not a magnetohom study state file")
    return state


class Pipeline:
    """Stages over one study directory; see the module docstring.

    Parameters
    ----------
    stages : sequence of Stage
        Any order; dependencies must be among them and acyclic.
    root : path-like
        The study directory (created).
    """

    def __init__(self, stages: Sequence[Stage], root: str | os.PathLike) -> None:
        self.stages = {s.name: s for s in stages}
        if len(self.stages) != len(stages):
            raise InputError("stage names must be unique")
        for s in stages:
            missing = [d for d in s.deps if d not in self.stages]
            if missing:
                raise InputError(f"stage {s.name} depends on unknown stage(s) {missing}")
        self.order = self._toposort()
        self.root = Path(root)
        self._fp: dict[str, str] = {}
        self.state = load_state(self.root)

    def _toposort(self) -> list[str]:
        order: list[str] = []
        mark: dict[str, int] = {}

        def visit(name: str) -> None:
            if mark.get(name) == 2:
                return
            if mark.get(name) == 1:
                raise InputError(f"stage dependencies form a cycle through {name}")
            mark[name] = 1
            for d in self.stages[name].deps:
                visit(d)
            mark[name] = 2
            order.append(name)

        for name in self.stages:
            visit(name)
        return order

    # -- state ----------------------------------------------------------------------------
    def fingerprint(self, name: str) -> str:
        """SHA-256 of the stage's name, parameters and its dependencies' fingerprints."""
        if name not in self._fp:
            s = self.stages[name]
            blob = json.dumps(
                {
                    "name": name,
                    "params": to_jsonable(dict(s.params)),
                    "deps": [self.fingerprint(d) for d in s.deps],
                },
                sort_keys=True,
            )
            self._fp[name] = hashlib.sha256(blob.encode()).hexdigest()
        return self._fp[name]

    def record(self, name: str) -> dict[str, Any]:
        """The stage's record in the state file (empty dict if none)."""
        return self.state["stages"].get(name, {})

    def status(self, name: str) -> str:
        """``done``, ``stale`` (other fingerprint or outputs missing), ``running``, ``failed``
        or ``todo``."""
        rec = self.record(name)
        if not rec:
            return "todo"
        if rec.get("fingerprint") != self.fingerprint(name):
            return "stale"
        if rec.get("status") == "done":
            ok = all((self.root / p).exists() for p in self.stages[name].outputs)
            return "done" if ok else "stale"
        return str(rec.get("status", "todo"))

    def results(self) -> dict[str, dict[str, Any]]:
        """Results of the stages that are done (with the current fingerprint)."""
        return {n: self.record(n).get("result", {}) for n in self.order if self.status(n) == "done"}

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / STATE_FILE
        tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(to_jsonable(self.state), indent=1, allow_nan=True) + "\n")
        os.replace(tmp, path)

    # -- selection ------------------------------------------------------------------------
    def _match(self, patterns: Iterable[str], what: str) -> set[str]:
        out: set[str] = set()
        for pat in patterns:
            hits = [n for n in self.order if fnmatch.fnmatchcase(n, pat)]
            if not hits:
                raise InputError(
                    f"{what} {pat!r} matches no stage; stages: {', '.join(self.order)}"
                )
            out.update(hits)
        return out

    def plan(
        self, select: Iterable[str] | None = None, force: Iterable[str] = ()
    ) -> list[tuple[str, str]]:
        """``(stage, action)`` in run order; action is ``skip`` or ``run``.

        ``select`` and ``force`` hold stage names or glob patterns (``train.*``); the selected
        stages come with everything they depend on; forced stages are selected too.
        """
        forced = self._match(force, "--force")
        wanted = self._match(select, "--stages") | forced if select is not None else set(self.order)
        todo: set[str] = set()

        def add(name: str) -> None:
            if name not in todo:
                todo.add(name)
                for d in self.stages[name].deps:
                    add(d)

        for name in wanted:
            add(name)
        return [
            (n, "run" if n in forced or self.status(n) != "done" else "skip")
            for n in self.order
            if n in todo
        ]

    # -- running --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(f"study directory {self.root} is in use by another run") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _remove_outputs(self, name: str) -> None:
        root = self.root.resolve()
        paths = set(self.stages[name].outputs) | set(self.record(name).get("outputs", []))
        for rel in sorted(paths):
            p = (self.root / rel).resolve()
            if root not in p.parents:
                log.warning("not removing %s: outside the study directory", p)
                continue
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
            log.info("removed old output %s of stage %s", rel, name)

    def run(
        self,
        select: Iterable[str] | None = None,
        force: Iterable[str] = (),
        *,
        info: Mapping[str, Any] | None = None,
    ) -> list[tuple[str, str]]:
        """Run the plan (see :meth:`plan`); returns it. ``info`` is stored with this run.

        Raises
        ------
        Exception
            Whatever a stage raises; the stage is recorded as ``failed`` and the run stops.
        """
        with self._lock():
            self.state = load_state(self.root)  # another run may have finished meanwhile
            steps = self.plan(select, force)
            forced = self._match(force, "--force")
            run_rec = {"started": _now(), "info": dict(info or {}), "stages": []}
            self.state["runs"].append(run_rec)
            self._save()
            for name, action in steps:
                if action == "skip":
                    log.info("stage %s: done, skipped", name)
                    continue
                self._run_stage(name, forced=name in forced)
                run_rec["stages"].append(name)
            run_rec["finished"] = _now()
            self._save()
        return steps

    def _run_stage(self, name: str, *, forced: bool) -> None:
        stage = self.stages[name]
        rec = self.record(name)
        fp = self.fingerprint(name)
        if rec and (forced or rec.get("fingerprint") != fp):
            self._remove_outputs(name)
            rec = {}
        resumed = bool(rec) and rec.get("status") in ("running", "failed")
        rec = {
            "fingerprint": fp,
            "status": "running",
            "started": _now(),
            "attempts": int(rec.get("attempts", 0)) + 1,
            "run": len(self.state["runs"]) - 1,
            "outputs": list(stage.outputs),
        }
        self.state["stages"][name] = rec
        self._save()
        log.info("stage %s: %s", name, "resuming" if resumed else "running")
        results = {d: self.record(d).get("result", {}) for d in self._ancestors(name)}
        t0 = time.perf_counter()
        try:
            result = stage.run(StageContext(self.root, stage, results))
        except BaseException as exc:
            rec.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            rec["seconds"] = time.perf_counter() - t0
            self._save()
            raise
        rec.update(
            status="done",
            finished=_now(),
            seconds=time.perf_counter() - t0,
            result=to_jsonable(result or {}),
        )
        self._save()
        log.info("stage %s: done in %.1f s", name, rec["seconds"])

    def _ancestors(self, name: str) -> list[str]:
        seen: list[str] = []

        def walk(n: str) -> None:
            for d in self.stages[n].deps:
                if d not in seen:
                    seen.append(d)
                    walk(d)

        walk(name)
        return seen
