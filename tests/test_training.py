"""The original's training procedure (SPEC §7): the frames it trained on, its split, and its fit
checked against an independent re-implementation of train.py, in both legacy and corrected
form."""

import gzip
import math
import random

import pytest
import torch
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqFeature import FeatureLocation, SeqFeature
from Bio.SeqRecord import SeqRecord

from virnucpro.training.fit import evaluate, fit_classifier, roc_auc, split_indices
from virnucpro.training.frames import TrainingFrame, cds_translations, training_frames

from reference import original, original_training

N_FRAMES, N_FEATURES = 300, 24
# With these data and seed the test loss first rises, then falls to its lowest at epoch 21, and
# early stopping ends the fit at epoch 26: legacy and corrected return different weights.
SEED, BEST_EPOCH = 2, 21
# The package and the reference run the same float32 operations in the same order, so their
# weights are bit-identical today; the tolerance leaves room for a torch release that rounds
# one kernel differently, far below what a wrong step or random draw would change.
WEIGHTS_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


# the fits are tiny: one thread runs them faster than several contending ones
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset():
    """(train features, train labels, test features, test labels): random frames labelled by a
    noisy linear rule, split as the original splits them."""
    generator = torch.Generator().manual_seed(7)
    features = torch.randn(N_FRAMES, N_FEATURES, generator=generator)
    direction = torch.randn(N_FEATURES, generator=generator)
    noise = 4 * torch.randn(N_FRAMES, generator=generator)
    labels = (features @ direction + noise > 0).long()
    train, test = split_indices(N_FRAMES)
    return features[train], labels[train], features[test], labels[test]


@pytest.fixture(scope="module")
def fits(dataset):
    """{legacy: (model, history, epoch)} of the package's fit at SEED."""
    return {
        legacy: fit_classifier(*dataset, seed=SEED, legacy=legacy, log=lambda line: None)
        for legacy in (False, True)
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["corrected", "legacy"])
@pytest.mark.slow
def test_fit_matches_the_original_procedure(dataset, fits, legacy):
    model, history, epoch = fits[legacy]
    ref_model, ref_history, ref_epoch = original_training.train(*dataset, SEED, legacy)
    assert epoch == ref_epoch
    reference_state = ref_model.state_dict()
    assert model.state_dict().keys() == reference_state.keys()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, reference_state[name], **WEIGHTS_TOLERANCE, msg=name)
    assert [row["epoch"] for row in history] == [row["epoch"] for row in ref_history]
    for row, ref_row in zip(history, ref_history, strict=True):
        assert row == pytest.approx(ref_row, rel=1e-9, abs=1e-12)
    assert not model.training


def test_legacy_returns_the_last_epoch_and_corrected_the_best(dataset, fits):
    (corrected, history, best_epoch), (legacy, legacy_history, last_epoch) = fits.values()
    assert history == legacy_history  # only the weights kept at the end differ
    losses = [row["loss"] for row in history]
    assert (best_epoch, last_epoch) == (BEST_EPOCH, len(history))
    assert losses.index(min(losses)) + 1 == BEST_EPOCH
    # Early stopping ends the fit at the fifth epoch in a row with no loss below the best
    assert len(history) == BEST_EPOCH + 5
    assert all(loss >= losses[BEST_EPOCH - 1] for loss in losses[BEST_EPOCH:])
    # Each model scores the test set as the epoch it claims to hold did
    *_, test_features, test_labels = dataset
    assert evaluate(corrected, test_features, test_labels) == _test_metrics(history[BEST_EPOCH - 1])
    assert evaluate(legacy, test_features, test_labels) == _test_metrics(history[-1])


def _test_metrics(row):
    return {key: value for key, value in row.items() if key not in ("epoch", "train_loss")}


def test_same_seed_gives_bit_identical_weights(dataset):
    def fit(seed):
        model, _, _ = fit_classifier(*dataset, seed=seed, max_epochs=3, log=lambda line: None)
        return model.state_dict()

    global_state = torch.get_rng_state()
    first, again, other = fit(SEED), fit(SEED), fit(SEED + 1)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not torch.equal(first["hidden_layer.weight"], other["hidden_layer.weight"])
    assert torch.equal(torch.get_rng_state(), global_state)  # the caller's generator untouched


def test_fit_logs_every_epoch(dataset):
    lines = []
    _, history, _ = fit_classifier(*dataset, seed=SEED, max_epochs=2, log=lines.append)
    assert len(lines) == len(history) == 2
    assert lines[0].startswith("epoch 1/2: train loss ")


def test_fit_refuses_a_last_training_batch_of_one(dataset):
    train_features, train_labels, test_features, test_labels = dataset
    with pytest.raises(ValueError, match="batch of one"):
        fit_classifier(train_features[:33], train_labels[:33], test_features, test_labels, 1)


@pytest.mark.gpu
def test_fit_on_a_gpu_repeats_and_leaves_the_gpu_generator_be(dataset):
    cuda = torch.device("cuda", 0)
    on_gpu = [part.to(cuda) for part in dataset]
    cuda_state = torch.cuda.get_rng_state(cuda)
    first, again = (
        fit_classifier(*on_gpu, seed=SEED, max_epochs=3, log=lambda line: None)[0].state_dict()
        for _ in range(2)
    )
    assert first["hidden_layer.weight"].device == cuda
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert torch.equal(torch.cuda.get_rng_state(cuda), cuda_state)


@pytest.mark.parametrize("n", [0, 1, 9, 10, 25, 300, 1001])
def test_split_is_pythons_seeded_shuffle(n):
    random.seed(42)
    indices = list(range(n))
    random.shuffle(indices)
    cut = int(n * 0.1)
    assert split_indices(n) == (indices[cut:], indices[:cut])


def test_roc_auc_counts_ties_as_half():
    truth = [True, False, True, False, False]
    scores = [0.9, 0.9, 0.4, 0.1, 0.4]
    # positive 0.9 beats 0.4, 0.1 and ties 0.9; positive 0.4 beats 0.1 and ties 0.4
    assert roc_auc(truth, scores) == pytest.approx((2.5 + 1.5) / 6)
    assert math.isnan(roc_auc([True, True], [0.1, 0.2]))  # one class: no curve


# Chunks of two annotated records and one that is not annotated. Frame proteins (SPEC §2):
# ATGGCTAAAGGCTTTCCGATCGAAGCT  F1 MAKGFPIEA, F2 WLKAFRSK, R1 SFDRKAFSH, R2 ASIGKPLA
# ATGAAACCCGGGTTTGCAGCTCCATGG  F1 MKPGFAAPW (and four more)
# GCTGCAGCCAAAATGTGGCCTTTACGT  F1 AAAKMWPLR, F2 LQPKCGLY, F3 CSQNVAFT, R2 RKGHILAA, R3 VKATFWLQ
CHUNKS = [
    ("NC_000001.1_chunk_1", "atggctaaaggctttccgatcgaagct"),
    ("NC_000001.1_chunk_2", "ATGAAACCCGGGTTTGCAGCTCCATGGN"),
    ("NC_000002.1_chunk_1", "GCTGCAGCCAAAATGTGGCCTTTACGT"),
    ("NC_000003.1_chunk_1", "ATGGCTAAAGGCTTTCCGATCGAAGCT"),
]
TRANSLATIONS = {
    # chunk_1's F1 inside a CDS; chunk_2's F1 too, but chunk_2 holds an N; NC_000002's F1
    "NC_000001.1": ["MSMAKGFPIEAKL", "MKPGFAAPWG", "AAAKMWPLR"],
    # NC_000001.1_chunk_1's R1 in another record's CDS; this record's own R2
    "NC_000002.1": ["MSFDRKAFSHL", "MRKGHILAAK"],
}


def _write_genbank(path, opener=open):
    """A GenBank file of TRANSLATIONS' records, each CDS on a stretch of its sequence, plus a
    CDS without a translation and a gene feature, which add no protein."""
    records = []
    for record_id, proteins in TRANSLATIONS.items():
        record = SeqRecord(
            Seq("ACGT" * 30),
            id=record_id,
            name=record_id.split(".")[0],
            annotations={"molecule_type": "DNA"},
        )
        for number, protein in enumerate(proteins):
            location = FeatureLocation(3 * number, 3 * number + 30)
            record.features.append(
                SeqFeature(location, type="CDS", qualifiers={"translation": [protein]})
            )
        record.features.append(SeqFeature(FeatureLocation(0, 9), type="CDS"))
        record.features.append(
            SeqFeature(FeatureLocation(0, 9), type="gene", qualifiers={"translation": ["MAK"]})
        )
        records.append(record)
    with opener(path, "wt") as handle:
        SeqIO.write(records, handle, "genbank")
    return path


def test_cds_translations_read_plain_and_compressed_genbank(tmp_path):
    plain = _write_genbank(tmp_path / "release.gbff")
    # gzip-compressed under a plain name: the format is told by the content
    compressed = _write_genbank(tmp_path / "release_too.gbff", gzip.open)
    assert cds_translations(plain) == cds_translations(compressed) == TRANSLATIONS


def test_training_frames_follow_the_original_rules():
    frames = list(training_frames(CHUNKS, TRANSLATIONS))
    assert frames == [
        # upper-cased; the other stop-free frames are in no CDS of NC_000001.1 (R1 is in one
        # of NC_000002.1's), and chunk_2 is skipped whole for its N
        TrainingFrame("NC_000001.1_chunk_1F1", "ATGGCTAAAGGCTTTCCGATCGAAGCT", "MAKGFPIEA"),
        # its F1 is in a CDS of NC_000001.1, which does not count
        TrainingFrame("NC_000002.1_chunk_1R2", "CGTAAAGGCCACATTTTGGCTGCAG", "RKGHILAA"),
    ]
    assert frames == original_training.training_frames(CHUNKS, TRANSLATIONS)


def test_training_frames_match_the_original_on_random_chunks():
    """Random records, a fifth of their chunks with ambiguity codes, annotated with CDS
    translations that hold some of their chunks' stop-free frames, some of them in the next
    record's CDS instead."""
    rng = random.Random(5)
    chunks, translations = [], {}
    for number in range(60):
        record_id = f"rec{number}.1"
        for k in range(1, 4):
            letters = "ACGT" * 40 + "acgt" * 5 + ("NRYKSWMBDHV" if rng.random() < 0.2 else "")
            sequence = "".join(rng.choice(letters) for _ in range(rng.randrange(60, 150)))
            chunks.append((f"{record_id}_chunk_{k}", sequence))
            for protein in _stop_free_proteins(sequence):
                annotated = rng.choice([number, number, number + 1, None])
                if annotated is not None:
                    translations.setdefault(f"rec{annotated}.1", []).append(f"M{protein}K")
    expected = original_training.training_frames(chunks, translations)
    assert len(expected) > 50
    assert list(training_frames(chunks, translations)) == expected


def _stop_free_proteins(sequence):
    """The non-empty stop-free frame proteins of a chunk, by the reference's translation."""
    forward, reverse = sequence.upper(), original.revcomp(sequence.upper())
    proteins = [
        original.frame_protein(strand, offset)
        for strand in (forward, reverse)
        for offset in range(3)
    ]
    return [protein for protein in proteins if protein and "*" not in protein]
