"""The embedding job's phases on the CPU: no CUDA call before its lease, the shard read before
a lease it waits for, the lease released before its files are finished; its vectors those of
the plain engine in fp32, stored in float16 from fp16 and scored as the file stores them; and
the warm-up's batch of filler reaching the compiled layer code in a real batch's shape."""

import logging

import h5py
import numpy as np
import pytest
import torch

from virnucpro.calls import scoring
from virnucpro.calls.fidelity import FidelityError, GateSettings
from virnucpro.calls.scoring import SCORED_WITH, ShardScorer
from virnucpro.io.h5store import embedding_writer, open_embeddings, read_embeddings
from virnucpro.io.shards import read_shard, shard_entry
from virnucpro.io.tables import read_tsv
from virnucpro.models import dnabert_s, esm2
from virnucpro.models.checkpoints import load_classifier
from virnucpro.models.encoders import NucleotideEncoder, ProteinEncoder
from virnucpro.runtime.engine import Engine, embed_all, filler
from virnucpro.sequences.frames import stored_bases
from virnucpro.stages import embed
from virnucpro.stages.embed import embed_shard, longest_first
from virnucpro.training.run import training_matrix

from conftest import REAL_DNABERT_S

# what fixes the devices a process sees, or needs them fixed
CUDA_CALLS = (
    "is_available",
    "device_count",
    "init",
    "_lazy_init",
    "current_device",
    "mem_get_info",
    "get_device_capability",
    "synchronize",
    "empty_cache",
    "memory_allocated",
)


class RecordingLease:
    """A lease free at the job's start or not, which records in `events` when it is tried,
    taken and released, and whether the job's `outputs` existed (were finished) at release."""

    devices = ["0"]  # a GPU's: the job imports the compiler in its CPU phase

    def __init__(self, free, events, outputs):
        self.free, self.events, self.outputs, self.held = free, events, outputs, False

    def try_take(self):
        self.events.append("try_take")
        if self.free:
            self.take()
        return self.free

    def take(self):
        self.events.append("taken")
        self.held = True

    def release(self):
        if self.held:
            self.events.append(("released", [path.exists() for path in self.outputs]))
        self.held = False


@pytest.fixture
def events(monkeypatch):
    """What happens in a job, in order: the lease's steps, the CUDA calls and the embedding
    stage's log messages."""
    happened = []
    for name in CUDA_CALLS:
        original = getattr(torch.cuda, name)

        def record(*args, _name=name, _original=original, **kwargs):
            happened.append(f"cuda.{_name}")
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch.cuda, name, record)

    class Record(logging.Handler):
        def emit(self, record):
            happened.append(record.getMessage())

    handler = Record(logging.INFO)
    logger = logging.getLogger("virnucpro.stages.embed")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield happened
    logger.removeHandler(handler)
    logger.setLevel(level)


def shard_paths(run):
    return run / "shards" / "frames.tsv", run / "shards" / "manifest.tsv"


def where(events, text):
    """The index of the first event that is, or is a message that holds, `text`."""
    return next(i for i, e in enumerate(events) if isinstance(e, str) and text in e)


@pytest.mark.parametrize("free", [True, False], ids=["free-at-start", "busy-at-start"])
@pytest.mark.slow
def test_a_job_calls_no_cuda_before_its_lease_and_releases_it_before_finishing_its_files(
    demo_run, demo_models, tmp_path, events, free
):
    h5 = {kind: tmp_path / f"shard_0000.{kind}.h5" for kind in ("dnabert_s", "esm2")}
    lease = RecordingLease(free, events, list(h5.values()))
    embed_shard(*shard_paths(demo_run), "shard_0000", h5, demo_models, "auto", lease=lease)
    taken, released = events.index("taken"), where(events, "GPU work done, lease released")
    cuda = [i for i, e in enumerate(events) if isinstance(e, str) and e.startswith("cuda.")]
    assert cuda and min(cuda) > taken  # resolve_device asks, once the lease is held
    if free:
        assert events[:2] == ["try_take", "taken"]
    else:  # the shard read and tokenized, the checkpoints read, and only then the lease
        assert events[0] == "try_take"
        assert where(events, " frames read and tokenized") < where(events, "CPU phase done")
        assert where(events, "CPU phase done") < taken
    assert events[released - 1] == ("released", [False, False])  # before the files were
    assert where(events, "shard embedded, its files finished") > released
    assert all(path.exists() for path in h5.values())


def test_a_job_that_fails_on_the_gpu_releases_its_lease_and_leaves_no_file(
    demo_run, demo_models, tmp_path, events
):
    h5 = {kind: tmp_path / f"shard_0000.{kind}.h5" for kind in ("dnabert_s", "esm2")}
    lease = RecordingLease(False, events, list(h5.values()))
    with pytest.raises(FidelityError):
        embed_shard(
            *shard_paths(demo_run),
            "shard_0000",
            h5,
            demo_models,
            "cpu",
            precision="fp8",
            fp8_gate=GateSettings(min_cosine_p1=1.0),
            lease=lease,
        )
    assert events.count("taken") == 1 and ("released", [False, False]) in events
    assert not lease.held and not any(tmp_path.glob("*.h5"))


def test_an_fp32_job_stores_what_the_engine_computes_for_its_frames(
    demo_run, demo_models, tmp_path
):
    """The phases change nothing of the arithmetic: each model's float32 vectors are the
    engine's for the same frames in the same batches, bit for bit."""
    h5 = {kind: tmp_path / f"shard_0001.{kind}.h5" for kind in ("dnabert_s", "esm2")}
    embed_shard(*shard_paths(demo_run), "shard_0001", h5, demo_models, "cpu")
    ordinals, _, nucleotides, proteins = read_shard(*shard_paths(demo_run), "shard_0001")
    texts = {"dnabert_s": nucleotides, "esm2": proteins}
    file_ordinals = read_embeddings(h5["esm2"])[0]
    for kind, encoder_type in (("dnabert_s", NucleotideEncoder), ("esm2", ProteinEncoder)):
        tokens = encoder_type.tokenize(demo_models[kind], texts[kind])
        order = longest_first(tokens, ordinals)  # the order the job computes a model in
        encoder = encoder_type.load(demo_models[kind], torch.device("cpu"), torch.float32)
        expected, _ = embed_all(encoder, tokens[order], "cpu", 4096)
        by_ordinal = dict(zip(ordinals[order].tolist(), expected, strict=True))
        got_ordinals, _, got, _ = read_embeddings(h5[kind])
        assert got_ordinals.tolist() == file_ordinals.tolist()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, np.stack([by_ordinal[o] for o in got_ordinals]))


def test_an_fp16_job_stores_float16_and_scores_the_values_it_stores(
    demo_run, demo_models, tmp_path, monkeypatch
):
    monkeypatch.setattr(scoring, "BLOCK_ROWS", 4)  # the shard's frames in several blocks
    h5 = {kind: tmp_path / f"shard_0000.{kind}.h5" for kind in ("dnabert_s", "esm2")}
    classifier = demo_models["classifier_500"]
    embed_shard(
        *shard_paths(demo_run),
        "shard_0000",
        h5,
        demo_models,
        "cpu",
        precision="fp16",
        classifier_path=classifier,
    )
    with open_embeddings(h5["dnabert_s"]) as dna, open_embeddings(h5["esm2"]) as protein:
        assert dna["embedding"].dtype == protein["embedding"].dtype == np.float16
        from_files = scoring.score_files(
            load_classifier(classifier), [dna["embedding"], protein["embedding"]], classifier
        )
        np.testing.assert_array_equal(protein["scores"][:], from_files)
        stored = protein["embedding"][:]
    # the engine's fp16 vectors rounded once to float16, read back as float32
    ordinals, _, _, proteins = read_shard(*shard_paths(demo_run), "shard_0000")
    tokens = ProteinEncoder.tokenize(demo_models["esm2"], proteins)
    half = ProteinEncoder.load(demo_models["esm2"], torch.device("cpu"), torch.float16)
    computed, _ = embed_all(half, tokens[longest_first(tokens, ordinals)], "cpu", 4096)
    np.testing.assert_array_equal(stored, computed.astype(np.float16))
    assert read_embeddings(h5["esm2"])[2].dtype == np.float32
    np.testing.assert_array_equal(read_embeddings(h5["esm2"])[2], stored.astype(np.float32))

    # the classification (the job's scores, and those computed from the float16 vectors as
    # for another classifier) and a training run read float16 files as float32
    files, first = list(h5.values()), int(ordinals.min())
    from_job = ShardScorer(classifier).scores(files, first)
    with h5py.File(h5["esm2"], "a") as protein:
        protein.attrs[SCORED_WITH] = "0" * 64
    np.testing.assert_array_equal(ShardScorer(classifier, threads=1).scores(files, first), from_job)
    ids = read_embeddings(h5["esm2"])[1]
    matrix = training_matrix([list(h5.values())], dict.fromkeys(ids, 1))
    rows = np.argsort(read_embeddings(h5["esm2"])[0], kind="stable")
    np.testing.assert_array_equal(matrix.features[:, 48:], stored[rows].astype(np.float32))


def test_a_vector_beyond_float16_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "shard.esm2.h5"
    overflow = pytest.raises(FloatingPointError, match=f"{path}: a vector holds values beyond")
    with overflow, embedding_writer(path, range(3), ["a", "b", "c"]) as out:
        out.vectors(2, np.float16)
        out.write(0, np.array([[1.0, 2.0], [7e4, 0.0], [3.0, 4.0]], dtype=np.float32))
    assert not path.exists()


def test_the_manifests_longest_frame_bounds_each_models_tokens(demo_run, demo_models):
    """The bound a job that starts the GPU beside its CPU phase warms up by: no frame of a
    shard takes more tokens than it, the DNABERT-S frames with letters its BPE does not know
    (one token each) among them."""
    frames, manifest = shard_paths(demo_run)
    for row in read_tsv(manifest):
        _, _, nucleotides, proteins = read_shard(frames, manifest, row.shard)
        residues = int(shard_entry(frames, manifest, row.shard)["max_residues"])
        dna = NucleotideEncoder.tokenize(demo_models["dnabert_s"], nucleotides)
        protein = ProteinEncoder.tokenize(demo_models["esm2"], proteins)
        assert protein.lengths.max() == ProteinEncoder.most_tokens(residues)
        assert dna.lengths.max() <= NucleotideEncoder.most_tokens(residues)
    unknown = dnabert_s.tokenize_all(dnabert_s.load_tokenizer(REAL_DNABERT_S), ["N#x" * 67])
    assert unknown.lengths[0] <= NucleotideEncoder.most_tokens(67) == stored_bases(67) + 2


def recording(fn, seen):
    """`fn`, noting the shape, strides and dtype of each tensor it is given."""

    def run(*args):
        seen.append([(a.shape, a.stride(), a.dtype) for a in args if isinstance(a, torch.Tensor)])
        return fn(*args)

    return run


@pytest.mark.parametrize("kind", ["esm2", "dnabert_s"])
@torch.inference_mode()
def test_the_warm_up_batch_reaches_the_compiled_code_as_a_real_batch(
    esm2_tiny, dnabert_tiny, monkeypatch, kind
):
    """The layer code compiled on a GPU sees a batch's rows, not its sequences: the batch of
    filler a job warms up on gives it tensors of the shapes, strides and dtypes of a real
    batch in as many rows, so the loop finds its kernels compiled."""
    seen = []
    for block in (esm2.Block, dnabert_s.Layer):
        for name in block.COMPILED:
            monkeypatch.setattr(block, name, recording(getattr(block, name), seen))
    if kind == "esm2":
        encoder = ProteinEncoder.load(esm2_tiny, torch.device("cpu"), torch.float16)
        tokens = ProteinEncoder.tokenize(esm2_tiny, ["MKTAYIAKQRQ" * k for k in (1, 2, 3, 5)])
    else:
        encoder = NucleotideEncoder.load(dnabert_tiny, torch.device("cpu"), torch.float16)
        tokens = NucleotideEncoder.tokenize(dnabert_tiny, ["ACGTTGCAAT" * k for k in (1, 4, 9)])
    rows = Engine(encoder, torch.device("cuda")).rows(tokens.lengths, 1024)  # arithmetic only
    encoder(filler(rows))
    warm, seen[:] = list(seen), []
    encoder(tokens.batch(rows))
    assert warm and warm == seen
    assert embed.vector_dtype(encoder.dtype) == np.float16
