"""Per-shard embedding files (HDF5): frame ordinals and ids, one float32 vector per frame, and
the model identity and precision as attributes."""

import h5py
import numpy as np

from .atomic import atomic_path


def write_embeddings(path, ordinals, frame_ids, vectors, attrs):
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("ordinal", data=np.asarray(ordinals, dtype=np.int64))
        h5.create_dataset("frame_id", data=list(frame_ids), dtype=h5py.string_dtype())
        h5.create_dataset("embedding", data=np.asarray(vectors, dtype=np.float32))
        h5.attrs.update(attrs)


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
