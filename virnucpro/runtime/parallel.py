"""An ordered map over worker processes that reads its input only a few items ahead.

multiprocessing.Pool.imap and ProcessPoolExecutor.map both consume their whole input up front,
which would hold a sample's entire chunk file in memory (Executor.map's `buffersize` bound comes
only with Python 3.14); this keeps a few items per worker in flight. Its workers end with the
process that started them (virnucpro.runtime.lifeline), which Python's pool leaves to wait for work
that never comes.
"""

import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor

from .lifeline import end_with


def ordered_map(function, items, workers, ahead_per_worker=2):
    """Yield function(item) for each item, in input order; in this process when workers is 1."""
    if workers <= 1:
        yield from map(function, items)
        return
    lifeline = (os.getpid(), "the process that started this worker")
    with ProcessPoolExecutor(workers, initializer=end_with, initargs=lifeline) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= workers * ahead_per_worker:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
