"""Sharing one dataset run between MPI ranks: rank 0 computes and writes, the others compute.

Debian's h5py is serial, so one process owns the dataset file (:class:`DatasetFile`). The not-done
sample indices are dealt round-robin over the ranks by the caller (:mod:`micro.dataset`); then

* :func:`run_writer` (rank 0) computes its own share and, after each of its samples, writes
  whatever finished samples the other ranks have sent meanwhile (``Iprobe``/``recv``), then
  waits for the rest;
* :func:`run_worker` (ranks > 0) computes its share and ``isend`` s each result to rank 0
  without waiting, so a worker never idles while rank 0 is busy solving.

Messages are tuples: ``("ok", i, image uint8 (n,)*d, mu_eff (d, d), iterations (d,), seconds,
volume_fraction[, extra])`` (``extra``: a dict of further labels, passed to ``write_sample`` as
keywords, for files with more labels such as :mod:`micro.dataset_nl`) or
``("error", i, is_input_error, text)``. A sample that fails (on any rank) is reported and
stays unfinished; the run goes on with the others, and rank 0 knows exactly how many messages
to expect, so a failure never leaves a rank waiting. With one rank nothing is
sent, and only :class:`MagnetohomError` is caught (other exceptions are bugs and propagate).

Progress (rank 0): a tqdm bar when asked or when stderr is a terminal, and an INFO log line every
``every`` finished samples.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from magnetohom.errors import InputError, MagnetohomError
from micro.dataset_io import DatasetFile

__all__ = ["Progress", "run_worker", "run_writer"]

log = logging.getLogger(__name__)

TAG = 4242

#: ``label(i)`` -> the ``("ok", ...)`` message of sample ``i``; raises on failure.
Label = Callable[[int], tuple]


def _error_message(index: int, exc: BaseException) -> tuple:
    text = str(exc) if isinstance(exc, MagnetohomError) else f"{type(exc).__name__}: {exc}"
    return ("error", int(index), isinstance(exc, InputError), text)


def _compute(label: Label, index: int, catch: type[BaseException], where: str) -> tuple:
    try:
        return label(int(index))
    except catch as exc:
        if not isinstance(exc, MagnetohomError):
            log.exception("%s: sample %d failed", where, index)
        return _error_message(index, exc)


class Progress:
    """Rank 0's progress over a run: tqdm bar and periodic log lines.

    Parameters
    ----------
    path : Path
        The dataset file (for the messages).
    total : int
        Samples in the file.
    done : int
        Samples finished before this run.
    todo : int
        Samples this run has to do.
    show : bool or None
        tqdm bar; None: when stderr is a terminal.
    every : int
        An INFO line every this many finished samples (and at the last one).
    """

    def __init__(
        self, path: Path, total: int, done: int, todo: int, *, show: bool | None, every: int
    ) -> None:
        self.path, self.total, self.done, self.todo = path, total, done, todo
        self.every, self.new = max(1, int(every)), 0
        self.t0 = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty() if show is None else show:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=path.name, unit="SVE", smoothing=0.1)

    def step(self) -> None:
        """One more sample finished and written."""
        self.done += 1
        self.new += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.new % self.every == 0 or self.new == self.todo:
            rate = (time.perf_counter() - self.t0) / self.new
            left = rate * (self.todo - self.new)
            msg = "dataset %s: %d/%d done (%d new), %.3g s per SVE, about %.0f s left"
            log.info(msg, self.path, self.done, self.total, self.new, rate, left)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_writer(
    comm,
    writer: DatasetFile,
    label: Label,
    mine: Sequence[int],
    n_todo: int,
    progress: Progress,
) -> list[tuple[int, bool, str]]:
    """Rank 0: compute ``mine``, write every sample of the run (own and received).

    Parameters
    ----------
    comm : mpi4py communicator
    writer : DatasetFile
    label : callable
        ``label(i)`` -> ``("ok", ...)`` message.
    mine : sequence of int
        Rank 0's share of the indices.
    n_todo : int
        Samples of the run over all ranks (so ``n_todo - len(mine)`` messages are expected).
    progress : Progress

    Returns
    -------
    list of (index, is_input_error, text)
        The samples that failed.
    """
    from mpi4py import MPI

    failures: list[tuple[int, bool, str]] = []
    pending = n_todo - len(mine)

    def handle(msg: tuple) -> None:
        if msg[0] == "ok":
            _, i, image, mu, its, seconds, vf, *extra = msg
            writer.write_sample(
                i,
                image=image,
                mu_eff=mu,
                iterations=its,
                seconds=seconds,
                volume_fraction=vf,
                **(extra[0] if extra else {}),
            )
            progress.step()
        else:
            failures.append(msg[1:])
            log.error("sample %d failed: %s", msg[1], msg[3])

    def drain(block: bool) -> None:
        nonlocal pending
        while pending > 0 and (block or comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG)):
            handle(comm.recv(source=MPI.ANY_SOURCE, tag=TAG))
            pending -= 1

    catch = MagnetohomError if comm.size == 1 else Exception
    for i in mine:
        handle(_compute(label, i, catch, "rank 0"))
        drain(block=False)
    drain(block=True)
    return failures


def run_worker(comm, label: Label, mine: Sequence[int]) -> None:
    """Ranks > 0: compute ``mine`` and send every result (or failure) to rank 0."""
    from mpi4py import MPI

    requests = []
    for i in mine:
        msg = _compute(label, i, Exception, f"rank {comm.rank}")
        requests.append(comm.isend(msg, dest=0, tag=TAG))
        requests = [r for r in requests if not r.Test()]
    MPI.Request.Waitall(requests)
