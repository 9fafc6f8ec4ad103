"""Model and classifier files that ask for memory, or hold weights no model can have: each is
refused by its loader (ESM-2's `.pt`, DNABERT-S's directory, the classifier's `.pth`), naming
the file, while the loading process's peak memory (resource.getrusage's ru_maxrss) stays under
LIMIT above what the interpreter held, its modules imported. Each file asks for ASKED bytes,
twice the limit, and is written small: a zip bomb's deflate stream is one compressed MiB
repeated."""

import argparse
import json
import os
import pickletools
import struct
import subprocess
import sys
import zipfile
import zlib

import pytest
import safetensors.torch
import torch
from torch import nn

from virnucpro.demo.random_checkpoints import write_dnabert_s, write_esm2, write_pickled_classifier
from virnucpro.models.architectures import DNABertConfig
from virnucpro.models.classifier import MLPClassifier

from conftest import REAL_DNABERT_S, REPO

MIB = 1 << 20
LIMIT = 500 * MIB
ASKED = 1 << 30
# layers asked of a model: the DNABERT-S config.json took 2 min 42 s and 803 MB with
# 20000; an ESM-2 pickle naming each of 12500 layers' rotary frequencies stays under 1 MB
DNABERT_LAYERS, ESM2_LAYERS = 20000, 12500

# A child process that imports the loaders once, then loads each file it is sent in a process
# forked for it (whose ru_maxrss starts at what it holds, not at its parent's peak) and answers
# the outcome and how far that process's peak rose
CHILD = """
import json, os, resource, sys
import torch
from virnucpro.models.checkpoints import load_classifier, load_dnabert_s, load_esm2

LOADERS = {"esm2": load_esm2, "dnabert_s": load_dnabert_s,
           "classifier": load_classifier,
           "torch.load": lambda path: torch.load(path, weights_only=True)}

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

for line in sys.stdin:
    loader, path = json.loads(line)
    child = os.fork()
    if child:
        _, status = os.waitpid(child, 0)
        if status:  # killed before it could answer
            print(json.dumps([f"died with status {status}", 0]), flush=True)
        continue
    held = peak()
    try:
        LOADERS[loader](path)
        outcome = "loaded"
    except Exception as error:
        outcome = f"{type(error).__name__}: {error}"
    print(json.dumps([outcome, peak() - held]), flush=True)
    os._exit(0)
"""


@pytest.fixture(scope="module")
def load_in_child():
    """(outcome, bytes its peak rose) of loading a file in the child process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )

    def load(loader, path):
        child.stdin.write(json.dumps([loader, str(path)]) + "\n")
        child.stdin.flush()
        return json.loads(child.stdout.readline())

    yield load
    child.stdin.close()
    child.wait()


# ---- writing the files -----------------------------------------------------------------------


def write_zip(path, records):
    """A zip of {name: (data, method, declared size)}, written by hand: zipfile can neither
    store a record compressed elsewhere nor declare a size the record does not hold. A
    compressed record's CRC is left 0: it is checked only once the record is read whole."""
    directory = b""
    with open(path, "wb") as out:
        for name, (data, method, size) in records.items():
            crc = zlib.crc32(data) if method == zipfile.ZIP_STORED else 0
            # version needed, flags, method, time, date, CRC, compressed and inflated sizes
            fields = struct.pack("<HHHHHIII", 20, 0, method, 0, 0, crc, len(data), size)
            offset = out.tell()
            out.write(b"PK\x03\x04" + fields + struct.pack("<HH", len(name), 0))
            out.write(name.encode() + data)
            directory += b"PK\x01\x02" + struct.pack("<H", 20) + fields
            directory += struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, offset) + name.encode()
        start = out.tell()
        out.write(directory + b"PK\x05\x06")
        out.write(
            struct.pack("<HHHHIIH", 0, 0, len(records), len(records), len(directory), start, 0)
        )
    return path


def torch_archive(path, pickle_record):
    """A file laid out as torch.save lays one out, holding `pickle_record` as its data.pkl
    ((data, method, declared size))."""
    stored = zipfile.ZIP_STORED
    return write_zip(
        path,
        {
            "archive/data.pkl": pickle_record,
            "archive/byteorder": (b"little", stored, 6),
            "archive/version": (b"3\n", stored, 2),
        },
    )


def deflated_zeros(size):
    """A raw deflate stream of `size` zero bytes (whole MiBs), about a thousand times smaller:
    one compressed MiB repeated, as after a full flush a block does not depend on those before
    it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressor.compress(bytes(MIB))
    compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * (size // MIB) + compressor.flush()


def bytearray_pickle():
    """data.pkl of `bytearray(ASKED)`, which torch.load's weights_only allow-list runs."""
    call = b"\x80\x02cbuiltins\nbytearray\nJ" + struct.pack("<i", ASKED) + b"\x85R."
    return call, zipfile.ZIP_STORED, len(call)


def bomb(declared):
    """data.pkl inflating to ASKED bytes, declaring `declared` bytes."""
    return deflated_zeros(ASKED), zipfile.ZIP_DEFLATED, declared


def with_first_storage_numel(path, numel):
    """Rewrite the torch.save file `path`: its first storage declares `numel` elements, its
    record (and every tensor's shape) unchanged."""
    with zipfile.ZipFile(path) as archive:
        records = {name: archive.read(name) for name in archive.namelist()}
    name = next(name for name in records if name.endswith("/data.pkl"))
    pickle_bytes = records[name]
    ops = list(pickletools.genops(pickle_bytes))
    persid = next(i for i, (op, _, _) in enumerate(ops) if op.name == "BINPERSID")
    ends = next(i for i in range(persid, 0, -1) if ops[i][0].name == "TUPLE")
    start, end = ops[ends - 1][2], ops[ends][2]  # the count, last of the storage's record
    records[name] = pickle_bytes[:start] + b"J" + struct.pack("<i", numel) + pickle_bytes[end:]
    path.unlink()
    with zipfile.ZipFile(path, "w") as archive:
        for record, data in records.items():
            archive.writestr(record, data)
    return path


def esm2_file(tmp_path, change=None, layers=None):
    """A fair-esm checkpoint of 2 layers, `change(state)` applied to its weights, its config
    saying `layers` layers where given (each named layer's rotary frequencies added)."""
    path = write_esm2(tmp_path / "esm2_t2_test.pt", 2, 32, 2)
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    if change:
        change(data["model"])
    if layers:
        data["cfg"]["model"].encoder_layers = layers
        frequencies = data["model"]["encoder.sentence_encoder.layers.0.self_attn.rot_emb.inv_freq"]
        for layer in range(layers):  # one tensor, pickled once: the file stays small
            data["model"][f"encoder.sentence_encoder.layers.{layer}.self_attn.rot_emb.inv_freq"] = (
                frequencies
            )
    torch.save(data, path)
    return path


TINY_DNABERT = DNABertConfig(
    vocab_size=64, hidden_size=24, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32
)


def dnabert_directory(tmp_path, change=None):
    """A DNABERT-S directory of 2 layers, `change(state)` applied to its weights."""
    directory = write_dnabert_s(
        tmp_path / "DNABERT-S", TINY_DNABERT, REAL_DNABERT_S / "tokenizer.json"
    )
    if change:
        weights = directory / "pytorch_model.bin"
        state = torch.load(weights, weights_only=True)
        change(state)
        torch.save(state, weights)
    return directory


def classifier_file(tmp_path, monkeypatch, change=None):
    """A pickled MLPClassifier as train.py saved one, `change(model)` applied to it."""
    path = tmp_path / "500_model.pth"
    if change is None:
        return write_pickled_classifier(path, 96)
    script_class = type("MLPClassifier", (MLPClassifier,), {"__module__": "__main__"})
    monkeypatch.setattr(sys.modules["__main__"], "MLPClassifier", script_class, raising=False)
    model = script_class(96).eval()
    with torch.no_grad():
        change(model)
    torch.save(model, path)
    return path


def set_nan(name):
    def change(state):
        state[name] = state[name].clone()
        state[name].view(-1)[0] = float("nan")

    return change


# ---- the files, for each loader: (loader, the file, the file named in the refusal) -----------


def archive_for(loader, tmp_path, pickle_record):
    """(the path the loader takes, the file it must name) for a torch archive of
    `pickle_record` where the loader reads its checkpoint."""
    if loader == "dnabert_s":
        directory = dnabert_directory(tmp_path)
        return directory, torch_archive(directory / "pytorch_model.bin", pickle_record)
    name = {"esm2": "esm2_t2_test.pt", "classifier": "500_model.pth"}[loader]
    path = torch_archive(tmp_path / name, pickle_record)
    return path, path


@pytest.mark.slow
def test_the_measure_sees_what_torch_load_allocates(tmp_path, load_in_child):
    """Before issue 20 the ESM-2 and DNABERT-S loaders read their files with
    torch.load(weights_only=True), which this file makes allocate what it asks for: the measure
    sees it."""
    outcome, grew = load_in_child(
        "torch.load", torch_archive(tmp_path / "a.pt", bytearray_pickle())
    )
    print(f"torch.load, bytearray: peak {grew / MIB:.0f} MiB above; {outcome:.150}")
    assert outcome == "loaded" and grew >= ASKED


LOADERS = ["esm2", "dnabert_s", "classifier"]
ARCHIVES = {
    "bytearray": bytearray_pickle,
    "bomb of true size": lambda: bomb(declared=ASKED),
    "bomb of lying size": lambda: bomb(declared=22),
}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("case", ARCHIVES)
def test_a_pickle_asking_for_memory_is_refused_within_the_limit(
    tmp_path, load_in_child, loader, case
):
    given, named = archive_for(loader, tmp_path, ARCHIVES[case]())
    outcome, grew = load_in_child(loader, given)
    print(f"{loader}, {case}: peak {grew / MIB:.0f} MiB above; {outcome:.150}")
    assert grew < LIMIT
    assert outcome.startswith(f"ValueError: refusing to load {named}: ")
    assert "weights_only" not in outcome  # torch's advice to run the file's code


@pytest.mark.parametrize("loader", LOADERS)
def test_a_zip_directory_larger_than_a_models_is_refused_unread(tmp_path, load_in_child, loader):
    """zipfile would hold each record of the directory as an object ten times its size."""
    given, named = archive_for(loader, tmp_path, bytearray_pickle())
    with zipfile.ZipFile(named, "a") as archive:
        for n in range(12000):  # 1.5 MB of directory
            archive.writestr(f"archive/padding/{n:0>60}", b"")
    outcome, _ = load_in_child(loader, given)
    assert outcome.startswith(f"ValueError: refusing to load {named}: its zip directory takes ")


def oversized_storage(loader, tmp_path, monkeypatch):
    numel = ASKED // 2  # elements of 2 bytes or more
    if loader == "esm2":
        path = with_first_storage_numel(esm2_file(tmp_path), numel)
        return path, path
    if loader == "dnabert_s":
        directory = dnabert_directory(tmp_path)
        return directory, with_first_storage_numel(directory / "pytorch_model.bin", numel)
    path = with_first_storage_numel(classifier_file(tmp_path, monkeypatch), numel)
    return path, path


def huge_shape(loader, tmp_path, monkeypatch):
    if loader == "esm2":
        path = esm2_file(tmp_path, layers=ESM2_LAYERS)
        return path, path
    if loader == "dnabert_s":
        directory = dnabert_directory(tmp_path)
        config = json.loads((directory / "config.json").read_text())
        (directory / "config.json").write_text(
            json.dumps(config | {"num_hidden_layers": DNABERT_LAYERS})
        )
        return directory, directory / "config.json"

    def widen(model):  # a weight of 512 x 2^21 features, stored as one value
        model.hidden_layer.weight = nn.Parameter(torch.zeros(1).expand(512, 1 << 21))

    path = classifier_file(tmp_path, monkeypatch, widen)
    return path, path


def nan_weight(loader, tmp_path, monkeypatch):
    if loader == "esm2":
        path = esm2_file(tmp_path, set_nan("encoder.sentence_encoder.layers.1.fc2.weight"))
        return path, path
    if loader == "dnabert_s":
        directory = dnabert_directory(tmp_path, set_nan("encoder.layer.1.mlp.wo.weight"))
        return directory, directory / "pytorch_model.bin"

    def poison(model):
        model.output_layer.weight[1, 3] = float("nan")

    path = classifier_file(tmp_path, monkeypatch, poison)
    return path, path


FILES = {"oversized storage": oversized_storage, "huge shape": huge_shape, "NaN weight": nan_weight}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("case", FILES)
@pytest.mark.slow
def test_a_model_file_of_impossible_shape_or_values_is_refused_within_the_limit(
    tmp_path, monkeypatch, load_in_child, loader, case
):
    given, named = FILES[case](loader, tmp_path, monkeypatch)
    outcome, grew = load_in_child(loader, given)
    print(f"{loader}, {case}: peak {grew / MIB:.0f} MiB above; {outcome:.150}")
    assert grew < LIMIT
    assert outcome.startswith(f"ValueError: refusing to load {named}: ")


@pytest.mark.parametrize(
    "value, problem",
    [(-0.5, "holds negative values"), (float("inf"), "holds NaN or infinite values")],
    ids=["negative", "infinite"],
)
def test_a_classifier_with_a_variance_no_batch_can_have_is_refused(
    tmp_path, monkeypatch, load_in_child, value, problem
):
    def poison(model):
        model.bn1.running_var[7] = value

    path = classifier_file(tmp_path, monkeypatch, poison)
    outcome, _ = load_in_child("classifier", path)
    print(f"classifier, running_var {value}: {outcome:.150}")
    assert outcome.startswith(f"ValueError: refusing to load {path}: its bn1.running_var {problem}")


def safetensors_file(path, header, data=b""):
    """A safetensors file of `header` (its JSON) and `data`, written by hand."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def huge_tensor(path):
    spec = {"dtype": "F32", "shape": [ASKED // 4], "data_offsets": [0, ASKED]}
    safetensors_file(path, {"embeddings.word_embeddings.weight": spec}, bytes(4))


def huge_header(path):
    path.write_bytes(struct.pack("<Q", ASKED) + b"{")


def nan_safetensors(path):
    state = safetensors.torch.load_file(path)
    state["encoder.layer.0.mlp.wo.weight"][0, 0] = float("nan")
    safetensors.torch.save_file(state, path)


@pytest.mark.parametrize(
    "change", [huge_tensor, huge_header, nan_safetensors], ids=lambda change: change.__name__
)
def test_a_dnabert_s_safetensors_file_asking_for_memory_or_of_nan_weights_is_refused(
    tmp_path, load_in_child, change
):
    """Where DNABERT-S's weights are a model.safetensors, which the loader prefers."""
    directory = write_dnabert_s(
        tmp_path / "DNABERT-S",
        TINY_DNABERT,
        REAL_DNABERT_S / "tokenizer.json",
        weights="model.safetensors",
    )
    change(directory / "model.safetensors")
    outcome, grew = load_in_child("dnabert_s", directory)
    print(f"dnabert_s safetensors, {change.__name__}: peak {grew / MIB:.0f} MiB; {outcome:.150}")
    assert grew < LIMIT
    assert outcome.startswith(f"ValueError: refusing to load {directory / 'model.safetensors'}: ")
