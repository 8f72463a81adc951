"""Batches on worker processes (``gandit.parallel.map_batches``): in order, on other processes
that inherit the caller's arrays, on threads where the platform cannot fork, and errors raised
where the caller waits."""

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest
import torch

import gandit.parallel
from gandit.errors import WorkerDiedError
from gandit.parallel import can_fork, map_batches


def test_batches_come_back_in_order_from_forked_workers_that_share_the_callers_arrays():
    if not can_fork():
        pytest.skip("this platform cannot fork")
    big = np.arange(1_000_000, dtype=np.int64)       # inherited at the fork, never pickled
    before = torch.get_num_threads()

    def work(rows):
        return os.getpid(), torch.get_num_threads(), int(big[rows].sum())

    items = [np.arange(b, 1000, 7) for b in range(7)]
    out = list(map_batches(work, items, workers=3))
    assert [s for _, _, s in out] == [int(np.arange(b, 1000, 7).sum()) for b in range(7)]
    pids = {p for p, _, _ in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 3
    assert {t for _, t, _ in out} == {1}
    assert torch.get_num_threads() == before
    # one worker, or one item: here
    assert {p for p, _, _ in map_batches(work, items, workers=1)} == {os.getpid()}
    assert {p for p, _, _ in map_batches(work, items[:1], workers=4)} == {os.getpid()}
    assert not gandit.parallel._WORK


def test_threads_where_the_platform_cannot_fork(monkeypatch):
    monkeypatch.setattr(gandit.parallel, "can_fork", lambda: False)
    out = list(map_batches(lambda x: (os.getpid(), x * x), range(10), workers=2))
    assert out == [(os.getpid(), x * x) for x in range(10)]


@pytest.mark.parametrize("processes", [True, False])
def test_a_failing_batch_raises_where_the_caller_waits(processes):
    if processes and not can_fork():
        pytest.skip("this platform cannot fork")

    def work(x):
        if x == 3:
            raise ValueError(f"bad batch {x}")
        return x

    with pytest.raises(ValueError, match="bad batch 3"):
        list(map_batches(work, range(6), workers=2, processes=processes))
    assert not gandit.parallel._WORK


def test_threads_where_no_process_can_be_started(monkeypatch):
    """A fork that fails (a process limit, no memory left) falls back to threads, not to an error."""
    class NoFork:
        Pipe = staticmethod(multiprocessing.Pipe)

        class Process:
            def __init__(self, *args, **kwargs):
                pass

            def start(self):
                raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(gandit.parallel.multiprocessing, "get_context", lambda method: NoFork())
    out = list(map_batches(lambda x: (os.getpid(), x + 1), range(5), workers=2, processes=True))
    assert out == [(os.getpid(), x + 1) for x in range(5)]
    assert not gandit.parallel._WORK


class _Hang(Exception):
    pass


def _fail_instead_of_hanging(seconds: int):
    """Raises ``_Hang`` here after ``seconds``; returns the SIGALRM handler to put back."""
    def ring(signum, frame):
        raise _Hang(f"still waiting after {seconds} s")
    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    return previous


def test_a_worker_killed_mid_batch_stops_the_run_with_an_error_instead_of_a_hang():
    """The kernel's out-of-memory killer ends a worker with SIGKILL: ``multiprocessing.Pool`` waited
    for its batch forever; the caller gets a ``WorkerDiedError`` naming the signal and the fix, and
    no worker is left behind."""
    if not can_fork():
        pytest.skip("this platform cannot fork")

    def work(x):
        if x == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
        return x

    previous = _fail_instead_of_hanging(60)
    try:
        got = []
        with pytest.raises(WorkerDiedError, match=r"killed by SIGKILL .*OMP_NUM_THREADS=1"):
            for x in map_batches(work, range(10), workers=2, processes=True):
                got.append(x)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert got == list(range(len(got))) and len(got) <= 4      # in order, up to the lost batch
    assert not multiprocessing.active_children()
    assert not gandit.parallel._WORK


def test_leaving_the_loop_early_stops_the_workers():
    if not can_fork():
        pytest.skip("this platform cannot fork")

    def work(x):
        time.sleep(0.2 if x else 0.0)
        return x

    batches = map_batches(work, range(20), workers=2, processes=True)
    assert next(batches) == 0
    assert len(multiprocessing.active_children()) == 2
    batches.close()                       # what an error or Ctrl-C in the caller's loop does
    assert not multiprocessing.active_children()
    assert not gandit.parallel._WORK


def test_a_result_that_does_not_pickle_is_an_error_where_the_caller_waits():
    if not can_fork():
        pytest.skip("this platform cannot fork")
    with pytest.raises(RuntimeError, match="batch 1: its result could not be sent back"):
        list(map_batches(lambda x: (lambda: x) if x == 1 else x, range(4), workers=2, processes=True))
    assert not multiprocessing.active_children()
