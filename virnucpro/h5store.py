"""Per-shard embedding files (HDF5): frame ordinals and ids, one float32 vector per frame, and
the model identity and precision as attributes."""

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import h5py
import numpy as np

from .atomic import atomic_path


@contextmanager
def embedding_writer(path, ordinals, frame_ids, dim):
    """Yield (write, attrs): `write(start, vectors)` stores rows start.. from a background thread,
    off the GPU's critical path; `attrs` takes the file's attributes. The file gets its name only
    when every row is written."""
    with (
        atomic_path(path) as tmp,
        h5py.File(tmp, "w") as h5,
        ThreadPoolExecutor(1, thread_name_prefix="h5") as pool,
    ):
        h5.create_dataset("ordinal", data=np.asarray(ordinals, dtype=np.int64))
        h5.create_dataset("frame_id", data=list(frame_ids), dtype=h5py.string_dtype())
        rows = h5.create_dataset("embedding", shape=(len(frame_ids), dim), dtype=np.float32)
        writes = []

        def write(start, vectors):
            block = slice(start, start + len(vectors))
            writes.append(pool.submit(rows.__setitem__, block, vectors))

        yield write, h5.attrs
        for done in writes:
            done.result()


def read_embeddings(path):
    """(ordinals, frame ids, vectors [N, D] float32, attributes) of one shard file."""
    with h5py.File(path, "r") as h5:
        return (
            h5["ordinal"][:],
            [s.decode() for s in h5["frame_id"][:]],
            h5["embedding"][:],
            dict(h5.attrs),
        )


def read_attrs(path):
    with h5py.File(path, "r") as h5:
        return dict(h5.attrs)
