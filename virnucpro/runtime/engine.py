"""Keeping one device busy with one model over many token sequences.

Batches are consecutive runs of the sequences (the caller orders them longest first) that take
at most `batch_tokens` rows in the model's attention layout: their tokens when packed, their
count times the longest's padded length when padded. On a GPU every batch of a run is computed
in the same number of rows (the budget, padded with filler rows), so the compiled kernels are
built once, for exactly the shape every batch runs: by `warm_up`, on a batch of filler, before
the run, or else by the first batch, which is timed apart from the rest. A worker thread packs
the next batches into pinned memory while the GPU computes; each batch's copies to and from the
GPU are asynchronous and the host waits on a batch only once the next one is queued behind it,
so the GPU does not wait on the host.

Safety: a batch whose vectors are not all finite (an fp16 overflow) is recomputed in float32
and counted; an out-of-memory error halves the token budget and the work goes on from the
batch that failed.
"""

import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from ..models.attention import is_packed, padded_length
from ..models.compile import MODEL_CALLS, eager_in_this_thread
from ..models.packing import TokenStore
from .progress import Progress

log = logging.getLogger(__name__)

AHEAD = 2  # batches packed ahead of the one on the GPU


@dataclass
class RunStats:
    frames: int
    tokens: int
    batch_tokens: int
    batches: int = 0
    rows: int | None = None  # rows every batch is computed in (on a GPU), else None
    first_batch_seconds: float = 0.0  # the first batch, with any compiling it needs
    first_batch_tokens: int = 0
    wall_seconds: float = 0.0  # every batch after the first
    gpu_seconds: float | None = None  # summed per-batch time on the GPU's own clock, ditto
    recomputed_in_fp32: int = 0
    out_of_memory_retries: int = 0

    @property
    def gpu_busy(self):
        """Fraction of the batch loop's wall time that the GPU spent computing."""
        if self.gpu_seconds is None or self.wall_seconds == 0:
            return None
        return min(1.0, self.gpu_seconds / self.wall_seconds)

    @property
    def tokens_per_second(self):
        """The loop's rate: the tokens after the first batch over the time they took."""
        loop_tokens = self.tokens - self.first_batch_tokens
        return loop_tokens / self.wall_seconds if self.wall_seconds else 0.0

    def summary(self):
        busy = "" if self.gpu_busy is None else f", GPU busy {100 * self.gpu_busy:.1f}%"
        shape = "" if self.rows is None else f", each computed in {self.rows} rows"
        return (
            f"{self.frames} sequences, {self.tokens} tokens in {self.batches} batches of at most "
            f"{self.batch_tokens} rows{shape}: first batch "
            f"{self.first_batch_seconds:.1f} s, then {self.wall_seconds:.1f} s at "
            f"{self.tokens_per_second:,.0f} tokens/s{busy}; {self.recomputed_in_fp32} batches "
            f"recomputed in fp32 after non-finite values, {self.out_of_memory_retries} "
            "out-of-memory retries"
        )


def layout_rows(length, padded):
    """Rows one sequence of `length` tokens (or each of an array of lengths) takes in the
    attention layout."""
    return padded_length(length) if padded else length


def consecutive_ranges(lengths, start, budget, padded=False):
    """[start, end) runs of consecutive sequences that take at most `budget` rows each in the
    layout (a sequence longer than that gets a run of its own); in array arithmetic, each run
    sought among as many sequences as the budget can hold: a shard holds millions."""
    rows = layout_rows(np.asarray(lengths[start:], dtype=np.int64), padded)
    ranges, first = [], 0
    most = budget // max(int(rows.min()), 1) + 1 if len(rows) else 0
    while first < len(rows):
        window = rows[first : first + most]
        if padded:  # every sequence of a run padded to its longest
            grown = np.maximum.accumulate(window) * np.arange(1, len(window) + 1)
        else:
            grown = np.cumsum(window)
        end = first + max(1, int(np.searchsorted(grown, budget, side="right")))
        ranges.append((start + first, start + end))
        first = end
    return ranges


def filler(rows):
    """A batch of filler computed in `rows` rows, for Engine.warm_up: two sequences of unequal
    length, as most batches hold, whose attention takes the packed layout's variable-length
    path, as theirs does; the compiled layer code sees only the rows (tests/test_engine.py)."""
    return TokenStore.back_to_back(np.zeros(15, dtype=np.int32), [8, 7]).batch(rows)


def _packed(tokens, ranges, rows, pin):
    """Yield (start, end, batch) for each range, the next AHEAD packed on a worker thread."""

    def pack(start, end):
        batch = tokens[start:end].batch(rows)
        return batch.pin_memory() if pin else batch

    with ThreadPoolExecutor(1, thread_name_prefix="pack") as pool:
        pending = deque()
        upcoming = iter(ranges)
        for start, end in upcoming:
            pending.append((start, end, pool.submit(pack, start, end)))
            if len(pending) > AHEAD:
                break
        while pending:
            start, end, future = pending.popleft()
            following = next(upcoming, None)
            if following is not None:
                pending.append((*following, pool.submit(pack, *following)))
            yield start, end, future.result()


def _out_of_memory(error):
    """Whether an error is, or wraps, running out of GPU memory: torch.compile raises its own
    error when memory runs out while it compiles kernels for a new batch shape."""
    while error is not None:
        if isinstance(error, torch.OutOfMemoryError):
            return True
        error = getattr(error, "inner_exception", None) or error.__cause__ or error.__context__
    return False


@dataclass
class _InFlight:
    start: int
    end: int
    vectors: torch.Tensor  # on the host, filled asynchronously
    finite: torch.Tensor  # one bool on the device, read only once the batch is done
    events: list = field(default_factory=list)


class Engine:
    """Runs `encoder(batch) -> [B, dim]` over sequences of tokens on `device`."""

    def __init__(self, encoder, device):
        self.encoder = encoder
        self.device = device
        self.cuda = device.type == "cuda"
        self.padded = not is_packed(device.type, encoder.dtype, encoder.alibi)
        self._wide = None

    def rows(self, lengths, budget):
        """The rows every batch is computed in: one shape for the run on a GPU, where kernels
        are compiled for it; on the CPU each batch's own (no padding to compute)."""
        if not self.cuda:
            return None
        return max(budget, int(layout_rows(np.max(lengths), self.padded)))

    def warm_up(self, rows):
        """Compute a batch of filler in `rows` rows, the shape of a run's batches (`rows()`),
        so that the compiler builds, or loads from its cache, the kernels of that shape now
        and the run's first batch finds them; returns the seconds it took. On the CPU, where
        nothing is compiled, it does nothing. Out of memory, it leaves the run to halve its
        budget."""
        if not self.cuda:
            return 0.0
        started = time.perf_counter()
        try:
            with torch.inference_mode(), MODEL_CALLS:
                self.encoder(filler(rows).to(self.device))
            torch.cuda.synchronize(self.device)
        except Exception as error:
            if not _out_of_memory(error):
                raise
            log.warning("out of memory warming up for batches of %d rows", rows)
            torch.cuda.empty_cache()
        return time.perf_counter() - started

    def run(self, tokens, batch_tokens, on_result):
        """Embed every sequence of `tokens` (a TokenStore, or a list of token arrays);
        `on_result(start, vectors)` gets each batch's [n, dim] float32 block, in order, as soon
        as it is done."""
        tokens = TokenStore.of(tokens)
        lengths = tokens.lengths
        stats = RunStats(frames=len(tokens), tokens=int(lengths.sum()), batch_tokens=batch_tokens)
        progress = Progress(self.encoder.name, stats.frames, stats.tokens)
        stats.gpu_seconds = 0.0 if self.cuda else None
        started = time.perf_counter()
        position, in_flight = 0, deque()
        while position < len(tokens):
            ranges = consecutive_ranges(lengths, position, stats.batch_tokens, self.padded)
            stats.rows = self.rows(lengths, stats.batch_tokens)
            out_of_memory = False
            for start, end, batch in _packed(tokens, ranges, stats.rows, pin=self.cuda):
                try:
                    item = self._launch(start, end, batch)
                except Exception as error:
                    if not _out_of_memory(error):
                        raise
                    out_of_memory = True
                    break
                in_flight.append(item)
                position = end
                if stats.batches == 0:  # compiles, unless warmed up: timed on its own
                    self._finish(in_flight.popleft(), tokens, stats, on_result, progress)
                    stats.first_batch_tokens = int(lengths[start:end].sum())
                    stats.first_batch_seconds = time.perf_counter() - started
                    stats.gpu_seconds = 0.0 if self.cuda else None
                    started = time.perf_counter()
                while len(in_flight) > 1:
                    self._finish(in_flight.popleft(), tokens, stats, on_result, progress)
            while in_flight:
                self._finish(in_flight.popleft(), tokens, stats, on_result, progress)
            if out_of_memory:
                if stats.batch_tokens <= 1:
                    raise torch.OutOfMemoryError("out of memory even for a single sequence")
                stats.batch_tokens //= 2
                stats.out_of_memory_retries += 1
                torch.cuda.empty_cache()
                log.warning("out of memory: batch budget halved to %d rows", stats.batch_tokens)
        stats.wall_seconds = time.perf_counter() - started
        return stats

    def _launch(self, start, end, batch):
        """Queue a batch's copy in, forward pass and copy out; return without waiting."""
        events = []
        if self.cuda:
            events = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
            events[0].record()
        with MODEL_CALLS:
            vectors = self.encoder(batch.to(self.device, non_blocking=True))
        finite = torch.isfinite(vectors).all()
        host = torch.empty(vectors.shape, dtype=torch.float32, pin_memory=self.cuda)
        host.copy_(vectors, non_blocking=True)
        if self.cuda:
            events[1].record()
        return _InFlight(start, end, host, finite, events)

    def _finish(self, item, tokens, stats, on_result, progress):
        if self.cuda:
            item.events[1].synchronize()
            stats.gpu_seconds += item.events[0].elapsed_time(item.events[1]) / 1000
        vectors = item.vectors
        if not bool(item.finite):
            vectors = self._recompute_wide(tokens[item.start : item.end])
            stats.recomputed_in_fp32 += 1
        stats.batches += 1
        on_result(item.start, vectors.numpy())
        done = tokens.lengths[item.start : item.end]
        progress.advance(len(done), int(done.sum()))

    def _recompute_wide(self, tokens):
        """The batch again in float32, whose range fp16 overflows cannot exceed."""
        if self._wide is None:
            self._wide = self.encoder.float32_copy()
        log.warning(
            "non-finite values in a batch of %d sequences: recomputed in float32", len(tokens)
        )
        batch = tokens.batch().to(self.device)
        with eager_in_this_thread(), MODEL_CALLS:  # a shape of its own: compiling would not pay
            vectors = self._wide(batch).float().cpu()
        if not torch.isfinite(vectors).all():
            raise FloatingPointError("non-finite embeddings even in float32: the model is broken")
        return vectors


def auto_batch_tokens(bytes_per_token, device, cap, reserved=0):
    """A token budget for one batch: the CPU's fixed one, or what half the GPU's free memory
    (less `reserved` bytes that something else is about to take) holds, rounded down to a
    multiple of 1024 and capped where larger batches stop paying."""
    if device.type != "cuda":
        return 4096
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # cached
    free = max(free - reserved, 0)
    return int(np.clip(free // 2 // bytes_per_token // 1024 * 1024, 1024, cap))


def embed_all(encoder, tokens, device, batch_tokens):
    """Every vector [N, dim] in one array, and the run's statistics (for tests and benchmarks;
    the embedding stage streams the vectors to its file instead)."""
    vectors = np.empty((len(tokens), encoder.dim), dtype=np.float32)

    def keep(start, block):
        vectors[start : start + len(block)] = block

    with torch.inference_mode():
        stats = Engine(encoder, torch.device(device)).run(tokens, batch_tokens, keep)
    return vectors, stats
