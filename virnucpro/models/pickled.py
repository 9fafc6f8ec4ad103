"""Reading torch.save files (a zip of a pickle and the records of its storages) as data: nothing
in them is run, and nothing is allocated that the caller has not checked.

torch.load, even with weights_only=True, runs the constructors of allow-listed classes with
whatever arguments the file gives them, and its allow-list includes `bytearray`: a file can
make it allocate any amount of memory. It also inflates a compressed pickle whole, whatever its
size. So every checkpoint of this format virnucpro reads (fair-esm's ESM-2 `.pt`, DNABERT-S's
`pytorch_model.bin`, the original classifiers' `.pth`) is read here instead:
- the zip's directory and its pickle are read up to MAX_DIRECTORY_BYTES and MAX_PICKLE_BYTES,
  the pickle inflated a piece at a time, whatever sizes the file declares;
- the pickle by a restricted unpickler that calls nothing but these stand-ins:
  - an object of a class the caller names (a module class, fair-esm's argparse.Namespace) is a
    `PickledObject` that records the class's name and the attribute dict the file sets;
    calling one with arguments is refused;
  - a tensor is a `TensorRef`: its dtype, storage record, shape and strides, no data;
  - OrderedDict and set, which torch.save writes for state dicts and a module's hooks;
  any other global, or any persistent id other than a storage, is refused by name;
- the caller checks the tensors' names and shapes against its model, and only then has
  `read_tensors` map their data: each storage a record stored uncompressed (as torch.save
  stores them) inside the file and as large as its tensors reach, memory-mapped as
  torch.load(mmap=True) maps it, so that nothing is copied or inflated.

The pure-Python unpickler is used (a checkpoint's pickle takes at most about 115 kB): the C one
allocates its memo as an array as long as the largest index a file names.
"""

import io
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import torch

# The largest published checkpoint, ESM-2 15B (833 tensors), has a pickle of about 115 kB and a
# zip directory of about 52 kB
MAX_PICKLE_BYTES = 1 << 20
MAX_DIRECTORY_BYTES = 1 << 20
_STORAGE_DTYPES = {
    "HalfStorage": torch.float16,  # fair-esm's published weights
    "BFloat16Storage": torch.bfloat16,
    "FloatStorage": torch.float32,
    "LongStorage": torch.int64,  # BatchNorm's count of batches, DNABERT-S's position ids
}
_CONTAINERS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,  # pickle protocol 2 writes Python 2 names
}
# A zip record's local header: its fixed part, and where in it the lengths of the name and of
# the extra field that come before the record's bytes lie
_LOCAL_HEADER, _LOCAL_HEADER_BYTES, _NAME_AND_EXTRA = b"PK\x03\x04", 30, slice(26, 30)


class Refused(ValueError):
    """What in a file made it unreadable as a checkpoint of the expected kind."""


class PickledObject:
    """An object in the file: `class_name` and the attribute dict (`state`) the file gives it."""

    class_name = None
    state = None

    def __new__(cls, *args):
        if args:  # a pickled object is built with none: its author constructed it
            raise Refused(f"it constructs {cls.class_name} with arguments {args!r:.80}")
        return super().__new__(cls)

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise Refused(f"it gives {self.class_name} a {type(state).__name__} as its state")
        self.state = state


class _Sealed:
    """A record the file cannot change after it is made (pickle's BUILD would otherwise set
    its fields, past the checks made when it was built)."""

    def __setstate__(self, state):
        raise Refused("it changes a tensor after building it")


@dataclass(frozen=True)
class StorageRef(_Sealed):
    dtype: torch.dtype
    key: str
    numel: int


@dataclass(frozen=True)
class TensorRef(_Sealed):
    storage: StorageRef
    offset: int
    shape: tuple
    stride: tuple

    @property
    def reach(self):
        """How many elements of its storage the tensor reaches into."""
        if 0 in self.shape:
            return 0
        return (
            self.offset + 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True))
        )


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad, hooks, metadata=None):
    if (
        not isinstance(storage, StorageRef)
        or not isinstance(shape, tuple)
        or not isinstance(stride, tuple)
        or len(shape) != len(stride)
        or not _ints(offset, *shape, *stride)
    ):
        raise Refused("it holds a tensor that is not a plain storage, shape and strides")
    return TensorRef(storage, offset, shape, stride)


def _rebuild_parameter(data, requires_grad, hooks):
    if not isinstance(data, TensorRef):
        raise Refused("it holds a parameter that is not a tensor")
    return data


def _ints(*values):
    return all(type(v) is int and v >= 0 for v in values)


class _Unpickler(pickle._Unpickler):
    def __init__(self, data, classes):
        super().__init__(io.BytesIO(data))
        self.globals = {
            **_CONTAINERS,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            **{("torch", name): dtype for name, dtype in _STORAGE_DTYPES.items()},
        }
        for name in classes:
            module, _, short = name.rpartition(".")
            stand_in = type(short, (PickledObject,), {"class_name": name})
            self.globals[module, short] = stand_in

    def find_class(self, module, name):
        try:
            return self.globals[module, name]
        except KeyError:
            raise Refused(f"it refers to {module}.{name}") from None

    def persistent_load(self, pid):
        if (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], torch.dtype)
            and isinstance(pid[2], str)
            and _ints(pid[4])
        ):
            return StorageRef(pid[1], pid[2], pid[4])
        raise Refused(f"it holds a persistent object {pid!r:.80} that is not a storage")


def read_pickle(path, classes=()):
    """What the pickle of a torch.save file holds, as data: objects of `classes` (fully
    qualified names, e.g. torch.nn.modules.linear.Linear) as PickledObjects, tensors as
    TensorRefs, containers and plain values as themselves. Raises Refused for anything else."""
    with _archive(path) as (archive, prefix):
        data = _read(archive, _record(archive, prefix + "data.pkl"), MAX_PICKLE_BYTES)
    if len(data) > MAX_PICKLE_BYTES:
        raise Refused(f"its pickle is more than {MAX_PICKLE_BYTES} bytes, more than a model's")
    try:
        return _Unpickler(data, classes).load()
    except Refused:
        raise
    except Exception as error:  # noqa: BLE001 - a malformed pickle, whatever broke
        raise Refused(f"its pickle is malformed ({type(error).__name__}: {error!s:.80})") from None


def tensor_dict(value, what):
    """`value`, a dict of names to TensorRefs (a state dict); else Refused, naming it `what`."""
    if not isinstance(value, dict) or not all(
        isinstance(name, str) and isinstance(tensor, TensorRef) for name, tensor in value.items()
    ):
        raise Refused(f"{what} is not a dict of named tensors")
    return value


def module_contents(root):
    """({path: PickledObject}, {name: TensorRef}) of a module tree, named as torch's
    named_modules() and state_dict() name them ('' is the top-level module)."""
    modules, tensors, seen, pending = {}, {}, set(), [("", root)]
    while pending:
        path, module = pending.pop()
        if not isinstance(module, PickledObject) or module.state is None:
            what = f"its {path}" if path else "the object it holds"
            raise Refused(f"{what} is a {type(module).__name__}, not a module")
        if id(module) in seen:
            raise Refused(f"its module {path} appears twice")
        seen.add(id(module))
        modules[path] = module
        for kind in ("_parameters", "_buffers", "_modules"):
            entries = module.state.get(kind, {})
            if not isinstance(entries, dict) or not all(isinstance(n, str) for n in entries):
                raise Refused(f"its {path or 'top-level module'} has a malformed {kind}")
            for name, value in entries.items():
                full = f"{path}.{name}" if path else name
                if kind == "_modules":
                    pending.append((full, value))
                elif isinstance(value, TensorRef):
                    tensors[full] = value
                elif value is not None:
                    raise Refused(f"its {full} is a {type(value).__name__}, not a tensor")
    return modules, tensors


def read_tensors(path, refs):
    """{name: tensor} of {name: TensorRef}, memory-mapped from the file: check their names and
    shapes first. Each storage must be a record stored uncompressed inside the file, exactly as
    large as the tensors of `refs` that view it reach, so that what is mapped is what was
    checked; nothing is copied."""
    viewers = {}
    for name, ref in refs.items():
        viewers.setdefault(ref.storage, []).append(name)
    starts = {}
    with _archive(path) as (archive, prefix), open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        for storage, names in viewers.items():
            reach = max(refs[name].reach for name in names)
            if reach != storage.numel:
                larger = "larger" if reach < storage.numel else "smaller"
                raise Refused(f"its {names[0]} is a view of a storage {larger} than it")
            nbytes = storage.numel * storage.dtype.itemsize
            info = _record(archive, f"{prefix}data/{storage.key}")
            if info.compress_type != zipfile.ZIP_STORED:
                raise Refused(f"its record of {names[0]} is compressed, as torch.save never does")
            if info.file_size != nbytes:
                raise Refused(
                    f"its record of {names[0]} holds {info.file_size} bytes, not {nbytes}"
                )
            starts[storage] = _data_start(handle, info)
            if starts[storage] + nbytes > size:
                raise Refused(
                    f"its record of {names[0]} runs past the end of the file (cut short?)"
                )
        mapped = torch.UntypedStorage.from_file(os.fspath(path), False, size)
    tensors = {}
    for name, ref in refs.items():
        start = starts[ref.storage]
        storage = mapped[start : start + ref.storage.numel * ref.storage.dtype.itemsize]
        tensor = torch.empty(0, dtype=ref.storage.dtype)
        tensors[name] = tensor.set_(storage, ref.offset, ref.shape, ref.stride)
    return tensors


@contextmanager
def _archive(path):
    """The zip archive torch.save writes (since torch 1.6), and the folder of its records."""
    with open(path, "rb") as handle:
        # zipfile reads a whole zip directory into objects about ten times its size before
        # anything here could look at it: its own reader of the end record says how large
        end = zipfile._EndRecData(handle)
    if end is None:
        raise Refused("it is not a zip archive as torch.save writes")
    if end[zipfile._ECD_SIZE] > MAX_DIRECTORY_BYTES:
        raise Refused(
            f"its zip directory takes {end[zipfile._ECD_SIZE]} bytes, more than a model's"
        )
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise Refused("it is not a zip archive as torch.save writes") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1 or pickles[0].count("/") != 1:
            raise Refused("it is not a torch.save archive (one <folder>/data.pkl)")
        prefix = pickles[0].removesuffix("data.pkl")
        byteorder = prefix + "byteorder"  # older files have none: little-endian
        if (
            byteorder in archive.namelist()
            and _read(archive, _record(archive, byteorder), len(b"little")) != b"little"
        ):
            raise Refused("it was not saved on a little-endian machine")
        yield archive, prefix


def _record(archive, name):
    try:
        return archive.getinfo(name)
    except KeyError:
        raise Refused(f"it has no record {name}") from None


def _read(archive, info, most):
    """A record's bytes, up to `most` and one more: inflated a piece at a time, whatever size
    the record declares (zipfile's read() inflates the whole record first)."""
    try:
        with archive.open(info) as record:
            return record.read(most + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
        raise Refused(f"its record {info.filename} is unreadable ({error})") from None


def _data_start(handle, info):
    """Where in the file a stored record's bytes begin: after its local header and the name and
    extra field that follow it, whose lengths may differ from the directory's. zipfile reads
    this header to read a record, but does not say where the record lies."""
    handle.seek(info.header_offset)
    header = handle.read(_LOCAL_HEADER_BYTES)
    if len(header) != _LOCAL_HEADER_BYTES or not header.startswith(_LOCAL_HEADER):
        raise Refused(f"its record {info.filename} has no local header where its directory says")
    name_length, extra_length = struct.unpack("<HH", header[_NAME_AND_EXTRA])
    return info.header_offset + _LOCAL_HEADER_BYTES + name_length + extra_length
