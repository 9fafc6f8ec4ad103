"""Reading a pickled torch module (a `torch.save(model)` file) as data, without running it.

torch.load, even with weights_only=True, runs the constructors of allow-listed classes with
whatever arguments the file gives them, and its own allow-list includes `bytearray`: a file
can make it allocate any amount of memory. So such files are read here by a restricted
unpickler that calls nothing but these stand-ins:
- a module class is a `PickledModule` that records the class's name and the attribute dict
  the file sets; calling one with arguments is refused;
- a tensor is a `TensorRef`: its dtype, storage record, shape and strides, no data;
- OrderedDict and set, which torch.save writes for a module's hooks and buffer names.
Any other global, or any persistent id other than a storage, is refused by name. The caller
checks the module tree and the tensor shapes, and only then has `read_tensors` read the
data, which costs what those shapes do.

The pure-Python unpickler is used (a file's pickle is a few kB): the C one allocates its memo
as an array as long as the largest index a file names.
"""

import io
import math
import pickle
import zipfile
import zlib
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import torch

MAX_PICKLE_BYTES = 1 << 20  # a whole pickled MLPClassifier takes about 2 kB
_STORAGE_DTYPES = {"FloatStorage": torch.float32, "LongStorage": torch.int64}


class Refused(ValueError):
    """What in a file made it unreadable as a pickled module of the expected classes."""


class PickledModule:
    """A module in the file: `class_name` and the attribute dict (`state`) the file gives it."""

    class_name = None
    state = None

    def __new__(cls, *args):
        if args:  # a pickled module is built with none: its author constructed it
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
    def whole_storage(self):
        """Whether the tensor is its whole storage, in order (as every saved parameter is)."""
        contiguous = tuple(math.prod(self.shape[i + 1 :]) for i in range(len(self.shape)))
        return (
            self.offset == 0
            and self.stride == contiguous
            and math.prod(self.shape) == self.storage.numel
        )


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad, hooks, metadata=None):
    if not isinstance(storage, StorageRef) or not _ints(offset, *shape, *stride):
        raise Refused("it holds a tensor that is not a plain storage, shape and strides")
    return TensorRef(storage, offset, tuple(shape), tuple(stride))


def _rebuild_parameter(data, requires_grad, hooks):
    if not isinstance(data, TensorRef):
        raise Refused("it holds a parameter that is not a tensor")
    return data


def _ints(*values):
    return all(type(v) is int and v >= 0 for v in values)


class _Unpickler(pickle._Unpickler):
    def __init__(self, data, module_classes):
        super().__init__(io.BytesIO(data))
        self.globals = {
            ("collections", "OrderedDict"): OrderedDict,
            ("builtins", "set"): set,
            ("__builtin__", "set"): set,  # pickle protocol 2 writes Python 2 names
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            **{("torch", name): dtype for name, dtype in _STORAGE_DTYPES.items()},
        }
        for name in module_classes:
            module, _, short = name.rpartition(".")
            stand_in = type(short, (PickledModule,), {"class_name": name})
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


def read_module(path, module_classes):
    """The module tree of a torch.save(module) file: PickledModules of the named classes
    (fully qualified, e.g. torch.nn.modules.linear.Linear) holding TensorRefs. Raises Refused
    for anything else."""
    with _archive(path) as (archive, prefix):
        info = _record(archive, prefix + "data.pkl")
        if info.file_size > MAX_PICKLE_BYTES:
            raise Refused(f"its pickle is {info.file_size} bytes, more than a module's")
        data = _read(archive, info)
    try:
        return _Unpickler(data, module_classes).load()
    except Refused:
        raise
    except Exception as error:  # noqa: BLE001 - a malformed pickle, whatever broke
        raise Refused(f"its pickle is malformed ({type(error).__name__}: {error!s:.80})") from None


def module_contents(root):
    """({path: PickledModule}, {name: TensorRef}) of a module tree, named as torch's
    named_modules() and state_dict() name them ('' is the top-level module)."""
    modules, tensors, seen, pending = {}, {}, set(), [("", root)]
    while pending:
        path, module = pending.pop()
        if not isinstance(module, PickledModule) or module.state is None:
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
    """{name: tensor} for {name: TensorRef}, each a whole storage of the file: check their
    shapes first, this reads as many bytes as they say."""
    tensors = {}
    with _archive(path) as (archive, prefix):
        for name, ref in refs.items():
            if not ref.whole_storage:
                raise Refused(f"its {name} is a view of a storage larger than it")
            nbytes = ref.storage.numel * ref.storage.dtype.itemsize
            info = _record(archive, f"{prefix}data/{ref.storage.key}")
            if info.file_size != nbytes:
                raise Refused(f"its record of {name} holds {info.file_size} bytes, not {nbytes}")
            data = bytearray(_read(archive, info))
            tensors[name] = torch.frombuffer(data, dtype=ref.storage.dtype).reshape(ref.shape)
    return tensors


@contextmanager
def _archive(path):
    """The zip archive torch.save writes (since torch 1.6), and the folder of its records."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise Refused("it is not a zip archive as torch.save writes") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1 or pickles[0].count("/") != 1:
            raise Refused("it is not a torch.save archive (one <folder>/data.pkl)")
        prefix = pickles[0].removesuffix("data.pkl")
        if prefix + "byteorder" in archive.namelist():  # older files have none: little-endian
            byteorder = _record(archive, prefix + "byteorder")
            if byteorder.file_size > len(b"little") or _read(archive, byteorder) != b"little":
                raise Refused("it was not saved on a little-endian machine")
        yield archive, prefix


def _record(archive, name):
    try:
        return archive.getinfo(name)
    except KeyError:
        raise Refused(f"it has no record {name}") from None


def _read(archive, info):
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
        raise Refused(f"its record {info.filename} is unreadable ({error})") from None
