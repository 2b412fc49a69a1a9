"""How many threads an operation's band-parallel steps get in a worker process."""

from __future__ import annotations

import threading

from shared.jobs.processing import _RUNNING, operation_threads


def test_a_lone_operation_uses_every_core_and_side_by_side_ones_share_them() -> None:
    assert operation_threads(0, cores=2, running=1) == 2
    assert operation_threads(0, cores=2, running=2) == 1
    assert operation_threads(0, cores=8, running=3) == 2
    assert operation_threads(0, cores=2, running=5) == 1  # never fewer than one
    assert operation_threads(3, cores=2, running=2) == 3  # PIXELPIPE_IMAGING_THREADS wins


def test_the_process_counts_the_operations_running_at_once() -> None:
    inside = threading.Barrier(3)  # both operations and this test
    leave = threading.Event()
    seen: list[int] = []

    def operation() -> None:
        with _RUNNING.slot() as running:
            seen.append(running)
            inside.wait(5)
            leave.wait(5)

    before = _RUNNING.count
    threads = [threading.Thread(target=operation) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait(5)  # both are inside now
    assert _RUNNING.count == before + 2
    leave.set()
    for thread in threads:
        thread.join(5)
    assert sorted(seen) == [before + 1, before + 2]
    assert _RUNNING.count == before
