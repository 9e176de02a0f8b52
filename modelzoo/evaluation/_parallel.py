"""CPU count and a thread pool for NumPy work that releases the GIL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional, TypeVar

from modelzoo.devices import available_cpus

Item = TypeVar("Item")

#: Threads that scan a distance matrix by default: memory bandwidth, not
#: cores, bounds the scan, and each thread holds one block's temporaries.
MAX_DEFAULT_THREADS = 4


def resolve_threads(num_threads: Optional[int]) -> int:
    """``num_threads``, checked; None: the available CPUs, at most :data:`MAX_DEFAULT_THREADS`."""
    if num_threads is None:
        return max(1, min(MAX_DEFAULT_THREADS, available_cpus()))
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    return num_threads


def run_all(work: Callable[[Item], None], items: Iterable[Item], threads: int) -> None:
    """``work(item)`` for every item, on ``threads`` threads; the first exception is raised."""
    items = list(items)
    if threads <= 1 or len(items) <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # nothing new starts after a failure
            raise
