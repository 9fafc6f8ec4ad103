"""A chimeric contig, end to end through every stage: two real viral fragments inserted into
real host sequence. Its chunk scores come from a classifier built here to score the inserted
frames high (the demo models' weights are random, so no published classifier could), and its
viral regions must match the insertions within one chunk, in regions.tsv and in
virus_regions.fna."""

import numpy as np
import torch

from virnucpro.io.fasta import read_records
from virnucpro.io.h5store import read_embeddings
from virnucpro.io.tables import read_tsv
from virnucpro.models.classifier import MLPClassifier, save_classifier

from conftest import DVF
from stages import run_sample

CHUNK = 300


def chimeric_contig(path):
    """host[:1700] + virus 1 + host[1700:4300] + virus 2 + host[4300:]; returns the sequence
    and the inserts' (start, end), 1-based inclusive."""
    host = "".join(r.sequence for r in list(read_records(DVF / "host_val.fa"))[:2])
    viruses = [r.sequence for r in list(read_records(DVF / "virus_val.fa"))[:2]]
    pieces, inserts, at = [], [], 0
    for cut, virus in zip((1700, 4300), viruses, strict=True):
        pieces.append(host[at:cut])
        start = sum(map(len, pieces)) + 1
        pieces.append(virus)
        inserts.append((start, start + len(virus) - 1))
        at = cut
    pieces.append(host[at:])
    sequence = "".join(pieces)
    path.write_text(f">chimera\n{sequence}\n")
    return sequence, inserts


def inserted_frames(run, inserts):
    """The features of every kept frame and whether most of its chunk lies in an insert."""
    chunks = {c.chunk_id: (int(c.start), int(c.end)) for c in read_tsv(run / "chunks.tsv")}
    ids, features = None, []
    for model in ("dnabert_s", "esm2"):
        _, ids, vectors, _ = read_embeddings(run / "embeddings" / f"shard_0000.{model}.h5")
        features.append(vectors)
    inside = []
    for frame_id in ids:
        start, end = chunks[frame_id[:-2]]  # a frame id is its chunk id and F1..R3
        overlap = max(min(end, b) - max(start, a) + 1 for a, b in inserts)
        inside.append(overlap > (end - start + 1) / 2)
    return np.hstack(features).astype(np.float64), np.array(inside)


def separating_classifier(features, inside, path):
    """An MLPClassifier whose virus logit is 10 * t and others logit 10 * -t, where t = +1 on
    the inserted frames and -1 on the others exactly: t is the least-squares (here exact,
    fewer frames than features) linear fit, split into the two ReLU units of its hidden layer."""
    design = np.hstack([features, np.ones((len(features), 1))])
    fit = np.linalg.lstsq(design, np.where(inside, 1.0, -1.0), rcond=None)[0]
    model = MLPClassifier(features.shape[1])
    with torch.no_grad():
        for layer in (model.hidden_layer, model.output_layer):
            layer.weight.zero_()
            layer.bias.zero_()
        model.hidden_layer.weight[0] = torch.from_numpy(fit[:-1])
        model.hidden_layer.bias[0] = fit[-1]
        model.hidden_layer.weight[1] = -model.hidden_layer.weight[0]
        model.hidden_layer.bias[1] = -fit[-1]
        model.output_layer.weight[1, 0] = 10.0  # virus from t > 0
        model.output_layer.weight[0, 1] = 10.0  # others from t < 0
    save_classifier(model.eval(), path)  # BatchNorm as initialised: mean 0, variance 1
    return path


def test_the_regions_of_a_chimeric_contig_match_its_inserts(tmp_path, demo_models):
    fasta = tmp_path / "chimera.fa"
    sequence, inserts = chimeric_contig(fasta)
    first = run_sample(fasta, demo_models, tmp_path / "embedded", CHUNK, shards=1)
    features, inside = inserted_frames(first, inserts)
    assert inside.sum() > 10 and (~inside).sum() > 10
    classifier = separating_classifier(features, inside, tmp_path / "chimera.safetensors")
    models = {**demo_models, f"classifier_{CHUNK}": classifier}
    run = run_sample(fasta, models, tmp_path / "scored", CHUNK, shards=1)

    regions = list(read_tsv(run / "regions.tsv"))
    assert [(r.record_id, r.region_id) for r in regions] == [
        ("chimera", f"chimera|region_{r.start}_{r.end}") for r in regions
    ]
    found = [(int(r.start), int(r.end)) for r in regions]
    assert len(found) == len(inserts), (found, inserts)
    for (start, end), (true_start, true_end) in zip(found, inserts, strict=True):
        assert abs(start - true_start) <= CHUNK and abs(end - true_end) <= CHUNK, (found, inserts)
    assert all(float(r.mean_virus_score) > 0.9 for r in regions)

    # the record is called virus: virus.fna holds it whole, virus_regions.fna each region
    [record] = read_tsv(run / "records.tsv")
    assert (record.call, record.regions) == ("virus", "2")
    assert {r.id: r.sequence for r in read_records(run / "virus.fna")} == {"chimera": sequence}
    written = {r.id: r.sequence for r in read_records(run / "virus_regions.fna")}
    assert written == {f"chimera|region_{s}_{e}": sequence[s - 1 : e] for s, e in found}
    tracks = (run / "plots" / "tracks.svg").read_text()
    assert all(f"region_{s}_{e}" in tracks for s, e in found)
