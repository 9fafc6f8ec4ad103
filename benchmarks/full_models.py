"""Random-weight models at full size in the published formats, for the GPU benchmarks: ESM-2 3B
as a fair-esm checkpoint (fp16), DNABERT-S with its real config and tokenizer, and the two
classifiers (3328 features) pickled as the original's train.py saved them."""

from pathlib import Path

from virnucpro.demo.random_checkpoints import write_dnabert_s, write_esm2, write_pickled_classifier
from virnucpro.models.architectures import DNABertConfig

TOKENIZER = Path(__file__).resolve().parents[1] / "tests" / "data" / "dnabert-s" / "tokenizer.json"


def full_models(directory, written=("esm2", "dnabert_s", "classifier_300", "classifier_500")):
    """{esm2, dnabert_s, classifier_300, classifier_500} paths in `directory`; those `written`
    are written there once (ESM-2 3B takes 5.6 GB of disk)."""
    directory = Path(directory)
    paths = {
        "esm2": directory / "esm2_t36_3B_UR50D.pt",
        "dnabert_s": directory / "DNABERT-S",
        "classifier_300": directory / "300_model.pth",
        "classifier_500": directory / "500_model.pth",
    }
    if "esm2" in written and not paths["esm2"].exists():
        write_esm2(paths["esm2"], 36, 2560, 40, device="cuda")
    if "dnabert_s" in written and not (paths["dnabert_s"] / "config.json").exists():
        write_dnabert_s(paths["dnabert_s"], DNABertConfig(), TOKENIZER, device="cuda")
    for size, seed in ((300, 1), (500, 2)):
        if f"classifier_{size}" in written and not paths[f"classifier_{size}"].exists():
            write_pickled_classifier(paths[f"classifier_{size}"], 768 + 2560, seed=seed)
    return paths
