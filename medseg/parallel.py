"""Per-case work in a process pool, with a progress bar and results in input order.

Used by dataset validation, the fingerprint, the preprocessing cache and evaluate_folder.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm.auto import tqdm

__all__ = ["map_cases"]

T = TypeVar("T")


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts in milliseconds; the children only use numpy/nibabel, never torch threads.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def map_cases(
    function: Callable[..., T],
    items: Sequence[Any],
    *args: Any,
    workers: int = 2,
    progress: bool = False,
    desc: str = "cases",
) -> list[T]:
    """Apply ``function(item, *args)`` to each item, in ``workers`` processes when > 1.

    >>> map_cases(pow, [1, 2, 3], 2, workers=1)
    [1, 4, 9]
    """
    workers = max(1, min(int(workers), len(items), os.cpu_count() or 1))
    if workers == 1 or len(items) < 2:
        return [function(item, *args) for item in tqdm(items, desc=desc, disable=not progress)]
    with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
        futures = [pool.submit(function, item, *args) for item in items]
        return [f.result() for f in tqdm(futures, desc=desc, disable=not progress)]
