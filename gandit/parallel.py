"""Batches of per-image work on several cores: forked worker processes on Linux, threads
elsewhere (``can_fork``).

The forensics' per-image work is thousands of small array operations glued by Python: on
threads they hold each other up on the interpreter lock (2 cores, the analysis of 842 images:
129.8 s on one thread, 105.3 s on two; BENCHMARKS.md run 42). Forked processes run them
beside each other and share the parent's arrays (training pixels, the box and whole-image
indexes) without copying them: the work function and everything it reaches is inherited at
the fork, only each batch's result is sent back (pickled). Every worker runs torch, and so the OpenMP pool that
FAISS shares, on one thread, as the thread workers did; a batch's result is the same on any
worker, so the output is the same with any number of them.
"""

from __future__ import annotations

import itertools
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

#: Work functions of the running ``map_batches`` calls, by key: a forked worker finds its
#: caller's function here (inherited at the fork), so that it is never pickled.
_WORK: dict[int, Callable] = {}
_KEYS = itertools.count()


def can_fork() -> bool:
    """Whether worker processes are forked here: on Linux. Windows cannot fork, and on macOS a
    forked child of a process that used the system's frameworks may crash (Python starts its
    processes otherwise there since 3.8); both get threads."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _start_worker() -> None:
    # Ctrl-C goes to the whole process group: the parent stops the workers, which must not
    # each print a traceback of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _run(task: tuple[int, object]):
    key, item = task
    return _WORK[key](item)


def map_batches(work: Callable[[T], R], items: Sequence[T], workers: int,
                processes: bool | None = None) -> Iterator[R]:
    """``work(item)`` for each of ``items``, in order, on ``workers`` at once: forked processes
    (each on one torch thread) when ``processes`` (default: ``can_fork()``) and they can be
    started, else threads; with one worker or one item, here. ``work`` must not rely on side
    effects in this process (a forked worker's are lost) and its results must pickle."""
    workers = max(1, min(int(workers), len(items)))
    if workers == 1:
        yield from map(work, items)
        return
    if processes is None:
        processes = can_fork()
    key = next(_KEYS)
    _WORK[key] = work
    try:
        pool = multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker) if processes else None
    except OSError:      # no process could be started (a process limit, no memory left): threads
        pool = None
    try:
        if pool is None:
            with ThreadPoolExecutor(workers) as threads:
                yield from threads.map(work, items)
        else:
            with pool:
                yield from pool.imap(_run, [(key, item) for item in items])
    finally:
        del _WORK[key]
