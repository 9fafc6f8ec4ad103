"""Per-shard embedding files (HDF5): frame ordinals and ids, one vector per frame, and the
model identity and precision as attributes.

The vectors are float16 where the job computed in fp16 or FP8, float32 where it computed in
fp32 or bf16 (whose range float16 does not hold): a model computing in fp16 rounds every
activation to float16's 11 bits, so its vectors lose little more in float16 (2**-11 of a value
at most), and the files take half the disk and the writes (53 GB of DNABERT-S vectors in float32
for a sample of 10 million reads). Readers take them as float32 (float16 converts exactly), and
the embedding job scores the stored values, so that scores from the file are the job's.

A file says itself whether it is whole: its `rows` attribute gives the length of each dataset,
and its `complete` attribute, written after every row, says its writer finished it. Readers
open it through `open_embeddings`, which checks both.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import h5py
import numpy as np

from .atomic import atomic_path
from .damage import DamagedFile

DATASETS = ("ordinal", "frame_id", "embedding")
OPTIONAL_DATASETS = ("scores",)  # stored by the embedding job (calls.scoring.SCORED_WITH)
VECTOR_DTYPES = (np.float16, np.float32)
_ID_ROWS = 65536  # frame ids written at a time: HDF5 converts each block's strings at once


class EmbeddingFileWriter:
    """What `embedding_writer` yields, its frames written: `vectors(dim, dtype)` makes the
    dataset of their vectors; `write(start, vectors)` stores vectors at rows start.. from a
    background thread, off the GPU's critical path, as `stored(vectors)` makes them; `attrs`
    takes the file's attributes and `store(name, data)` a dataset of one row per frame (the
    classifier's scores)."""

    def __init__(self, path, h5, pool):
        self.path, self.h5, self.pool, self.attrs, self.writes = path, h5, pool, h5.attrs, []
        self.dtype = None  # the vectors', once `vectors` has made their dataset

    def vectors(self, dim, dtype):
        """Make the [rows, dim] dataset of vectors in `dtype`, one of VECTOR_DTYPES."""
        self.dtype = np.dtype(dtype)
        if self.dtype not in VECTOR_DTYPES:
            raise ValueError(f"embedding vectors are stored as one of {VECTOR_DTYPES}: {dtype}")
        self.h5.create_dataset("embedding", shape=(self.attrs["rows"], dim), dtype=self.dtype)

    def stored(self, vectors):
        """Finite `vectors` [n, dim] as the file stores them: FloatingPointError, naming the
        file, where a value does not fit float16 (over 65504)."""
        with np.errstate(over="ignore"):  # the error below says it
            stored = vectors.astype(self.dtype, copy=False)
        if stored.dtype != vectors.dtype and not np.isfinite(stored).all():
            raise FloatingPointError(
                f"{self.path}: a vector holds values beyond float16's range (largest magnitude "
                f"{np.abs(vectors).max():.6g}), which the file cannot store; set "
                "embedding.precision to fp32 to embed and store in float32"
            )
        return stored

    def write(self, start, vectors):
        """Store `vectors` at rows start..; returns them as stored."""
        stored = self.stored(vectors)
        block = slice(start, start + len(stored))
        self.writes.append(self.pool.submit(self.h5["embedding"].__setitem__, block, stored))
        return stored

    def store(self, name, data):
        self.h5.create_dataset(name, data=data)

    def finish(self):
        for done in self.writes:
            done.result()


@contextmanager
def embedding_writer(path, ordinals, frame_ids):
    """Yield an EmbeddingFileWriter for a new file of the frames `ordinals` and `frame_ids` (a
    list), their vectors to come; the file gets its name only when every row is written."""
    with (
        atomic_path(path) as tmp,
        # atomic_path's lock on the temporary file is the one that counts; HDF5's would clash
        h5py.File(tmp, "w", locking=False) as h5,
        ThreadPoolExecutor(1, thread_name_prefix="h5") as pool,
    ):
        h5.attrs["rows"] = len(frame_ids)
        h5.create_dataset("ordinal", data=np.asarray(ordinals, dtype=np.int64))
        _write_ids(h5, frame_ids)
        writer = EmbeddingFileWriter(path, h5, pool)
        yield writer
        writer.finish()
        h5.attrs["complete"] = True  # last: a file without it was never finished


def _write_ids(h5, frame_ids):
    """The frame_id dataset, whose object goes with this call: one of variable-length strings
    still held when its file fails to close (a full disk) crashes h5py 3.16 when released."""
    ids = h5.create_dataset("frame_id", shape=(len(frame_ids),), dtype=h5py.string_dtype())
    for start in range(0, len(frame_ids), _ID_ROWS):
        ids[start : start + _ID_ROWS] = frame_ids[start : start + _ID_ROWS]


@contextmanager
def open_embeddings(path):
    """An embedding file, open for reading once checked whole; DamagedFile if it is not."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        if error.errno is not None:  # missing or not ours to read: the file itself may be fine
            raise
        raise DamagedFile(path, f"HDF5 cannot open it ({error})") from None
    with h5:
        if not h5.attrs.get("complete", False):
            raise DamagedFile(path, "its writer never finished it (no 'complete' attribute)")
        present = tuple(name for name in OPTIONAL_DATASETS if name in h5)
        lengths = {name: len(h5[name]) if name in h5 else None for name in DATASETS + present}
        if any(length != h5.attrs.get("rows") for length in lengths.values()):
            raise DamagedFile(
                path, f"its 'rows' attribute says {h5.attrs.get('rows')} rows, it holds {lengths}"
            )
        yield h5


@contextmanager
def open_shard(paths):
    """The embedding files of one shard (one per model, in features order), open for reading
    once each is checked whole and all list the same frames in the same order, so that their
    rows go side by side; DamagedFile names the first that does not."""
    with ExitStack() as stack:
        files = [stack.enter_context(open_embeddings(path)) for path in paths]
        ordinals = files[0]["ordinal"][:]
        for path, other in zip(paths[1:], files[1:], strict=True):
            if not np.array_equal(ordinals, other["ordinal"][:]):
                # removing one of them makes the embedding job that writes them all run again
                raise DamagedFile(
                    path,
                    f"it does not list the frames of {paths[0]} in the same order: they were "
                    "not written by one embedding job",
                )
        yield files


def read_embeddings(path):
    """(ordinals, frame ids, vectors [N, D] float32, attributes) of one shard file."""
    with open_embeddings(path) as h5:
        return (
            h5["ordinal"][:],
            [s.decode() for s in h5["frame_id"][:]],
            h5["embedding"].astype(np.float32)[:],
            dict(h5.attrs),
        )


def read_attrs(path):
    with open_embeddings(path) as h5:
        return dict(h5.attrs)


def random_weights(paths):
    """Whether a model of random weights (a demo or test checkpoint) wrote any of the embedding
    files `paths`, as their attributes say."""
    return any(bool(read_attrs(path)["random_weights"]) for path in paths)
