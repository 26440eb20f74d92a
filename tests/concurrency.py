"""Run one piece of work in many threads released at the same instant (concurrency tests on PostgreSQL)."""

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def run_at_once(work: Callable[[int], T], count: int) -> list[T]:
    """Call work(0) … work(count - 1) in `count` threads that start together; results in index order.

    Each thread closes its own database connection. An exception a worker does not handle itself is raised here,
    so a deadlock or a crash fails the test instead of vanishing with its thread.
    """
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
