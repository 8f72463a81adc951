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

A worker that dies before it returns its batch (the kernel's out-of-memory killer) stops the
run with ``WorkerDiedError``; ``multiprocessing.Pool`` would wait for that batch forever.
"""

from __future__ import annotations

import itertools
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import wait
from typing import TypeVar

import torch

from gandit.errors import WorkerDiedError

T = TypeVar("T")
R = TypeVar("R")

#: Work functions and items of the running ``map_batches`` calls, by key: a forked worker finds
#: its caller's function and items here (inherited at the fork), so that neither is pickled.
_WORK: dict[int, tuple[Callable, Sequence]] = {}
_KEYS = itertools.count()
#: Seconds a worker told to stop is given to exit before it is terminated.
STOP_WAIT = 5.0


def can_fork() -> bool:
    """Whether worker processes are forked here: on Linux. Windows cannot fork, and on macOS a
    forked child of a process that used the system's frameworks may crash (Python starts its
    processes otherwise there since 3.8); both get threads."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _serve(key: int, conn) -> None:
    """A forked worker: runs the batches whose indexes it receives, sends back ``(index, ok,
    result or exception)``, and returns on None or when the caller is gone."""
    # Ctrl-C goes to the whole process group: the caller stops the workers, which must not
    # each print a traceback of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    work, items = _WORK[key]
    while True:
        try:
            i = conn.recv()
        except (EOFError, OSError):
            return
        if i is None:
            return
        try:
            out = (i, True, work(items[i]))
        except BaseException as err:  # noqa: BLE001  (raised again where the caller waits)
            out = (i, False, err)
        try:
            conn.send(out)
        except OSError:           # the caller is gone
            return
        except Exception as err:  # noqa: BLE001  (a result or an exception that does not pickle)
            try:
                conn.send((i, False, RuntimeError(f"batch {i}: its result could not be sent back: {err}")))
            except OSError:
                return


def _died(process) -> WorkerDiedError:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    return WorkerDiedError(f"a worker process (pid {process.pid}) {how} before it returned its batch, most "
                           f"likely for want of memory — run again with fewer workers (OMP_NUM_THREADS=1) "
                           f"or with more memory")


def _on_processes(key: int, n: int, workers: int) -> Iterator | None:
    """Results of ``_WORK[key]`` over its ``n`` items from ``workers`` forked processes, in order,
    each worker given the next item when it returns one; None where no process could be started."""
    ctx = multiprocessing.get_context("fork")
    started = []
    try:
        for _ in range(workers):
            here, there = ctx.Pipe()
            process = ctx.Process(target=_serve, args=(key, there), daemon=True)
            process.start()
            there.close()
            started.append((process, here))
    except OSError:        # a process limit, no memory left: those started, or threads
        if not started:
            return None
    except BaseException:  # Ctrl-C while they start
        for process, _ in started:
            process.terminate()
            process.join()
        raise
    return _results(started, n)


def _results(started: list, n: int) -> Iterator:
    process_of = {c: p for p, c in started}
    busy: dict = {}        # connection → the item its worker is running
    done: dict[int, object] = {}
    given, yielded, finished = 0, 0, False

    def died(conn) -> WorkerDiedError:
        process = process_of[conn]
        process.join()
        return _died(process)

    def give(conn) -> None:
        nonlocal given
        if given < n:
            try:
                conn.send(given)
            except OSError:
                raise died(conn) from None
            busy[conn] = given
            given += 1

    try:
        for _, conn in started:
            give(conn)
        while yielded < n:
            while yielded in done:
                yield done.pop(yielded)
                yielded += 1
            if yielded == n:
                break
            sentinels = {process_of[c].sentinel: c for c in busy}
            for r in wait(list(busy) + list(sentinels)):
                # a worker's result comes on its connection; its end, without one, on both (the
                # connection then reads as closed) or on its sentinel alone
                conn = sentinels.get(r, r)
                if conn not in busy:
                    continue
                if r is not conn and conn.poll():
                    continue              # the connection has something: read it there
                try:
                    i, ok, value = conn.recv()
                except (EOFError, OSError):
                    raise died(conn) from None
                if not ok:
                    raise value
                del busy[conn]
                done[i] = value
                give(conn)
        finished = True
    finally:
        for process, conn in started:
            if finished:
                try:
                    conn.send(None)
                except OSError:
                    pass
            else:
                process.terminate()
        for process, conn in started:
            process.join(STOP_WAIT if finished else None)
            if process.is_alive():
                process.terminate()
                process.join()
            conn.close()


def map_batches(work: Callable[[T], R], items: Sequence[T], workers: int,
                processes: bool | None = None) -> Iterator[R]:
    """``work(item)`` for each of ``items``, in order, on ``workers`` at once: forked processes
    (each on one torch thread) when ``processes`` (default: ``can_fork()``) and they can be
    started, else threads; with one worker or one item, here. ``work`` must not rely on side
    effects in this process (a forked worker's are lost) and its results must pickle. A worker
    process that dies before it returns its batch raises ``WorkerDiedError``; leaving the loop
    early (an error, Ctrl-C) stops the workers."""
    workers = max(1, min(int(workers), len(items)))
    if workers == 1:
        yield from map(work, items)
        return
    if processes is None:
        processes = can_fork()
    key = next(_KEYS)
    _WORK[key] = (work, items)
    try:
        results = _on_processes(key, len(items), workers) if processes else None
        if results is not None:
            yield from results
            return
        with ThreadPoolExecutor(workers) as threads:
            yield from threads.map(work, items)
    finally:
        del _WORK[key]
