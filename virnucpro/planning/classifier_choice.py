"""Which classifier a sample is called with, and the checks made of it when the run is planned:
a sample names one in its sheet row, or takes the published one of its chunk size; a trained
classifier's header must be for the sample's chunk size. A classifier the run will train is
judged by the training config, as its file is not there yet."""

from pathlib import Path

from ..errors import InputError
from ..io.classifier_header import CHUNK_SIZE_KEY, classifier_metadata, classifier_models

# where the train target writes its classifier (workflow/rules/train.smk)
TRAINED_CLASSIFIER = "results/training/classifier.safetensors"
PUBLISHED_CHUNK_SIZES = (300, 500)  # models.classifier_300, models.classifier_500


def sample_classifier(sample, row, models):
    """The classifier file of a sample: its sheet row's `classifier`, else the published one of
    its chunk size from the config's `models`."""
    if "classifier" in row:
        return row["classifier"]
    if row["chunk_size"] not in PUBLISHED_CHUNK_SIZES:
        raise InputError(
            f"sample {sample}: no published classifier is for {row['chunk_size']} bp chunks "
            f"(only {' and '.join(map(str, PUBLISHED_CHUNK_SIZES))}); give the sample a "
            f"`classifier` column in the sample sheet, such as one trained at "
            f"{row['chunk_size']} bp ({TRAINED_CLASSIFIER}, README: Training a classifier)"
        )
    return models[f"classifier_{row['chunk_size']}"]


def _to_be_trained(path):
    return Path(path) == Path(TRAINED_CLASSIFIER) and not Path(path).exists()


def planned_models(path, training):
    """The embedding models whose features the classifier `path` takes (classifier_models);
    for the classifier this run trains, the models of the `training` config."""
    return tuple(training["models"]) if _to_be_trained(path) else classifier_models(path)


def check_chunk_size(sample, chunk_size, path, training):
    """InputError unless the classifier `path` is for `chunk_size` bp chunks, as far as its
    header (or, for the classifier this run trains, the training config) tells."""
    if _to_be_trained(path):
        trained_for = training["chunk_size"]
    else:
        try:
            trained_for = classifier_metadata(path).get(CHUNK_SIZE_KEY)
        except (OSError, ValueError):
            return  # not a header to read: the jobs that load it say what is wrong
    if trained_for is not None and int(trained_for) != chunk_size:
        raise InputError(
            f"sample {sample} is cut into {chunk_size} bp chunks, but its classifier {path} is "
            f"for {trained_for} bp chunks: set the sample's chunk_size to {trained_for}, or "
            f"give it a classifier trained at {chunk_size} bp"
        )
