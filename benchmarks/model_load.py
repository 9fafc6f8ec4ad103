"""Model load time per embedding job at full size: ESM-2 3B from the fair-esm checkpoint, and
DNABERT-S from its directory.

Each load is timed up to a finished forward pass of one short protein, so lazily mapped
weights are really read; the forward pass alone is timed too and subtracted.

    python benchmarks/model_load.py --device cpu --workdir /tmp/virnucpro-load
"""

import argparse
import platform
import time
from pathlib import Path

import torch
from record import save

from virnucpro.demo.random_checkpoints import train_dna_tokenizer, write_dnabert_s, write_esm2
from virnucpro.models import esm2
from virnucpro.models.architectures import ESM2_PRESETS, DNABertConfig
from virnucpro.models.checkpoints import load_dnabert_s, load_esm2
from virnucpro.models.packing import PackedBatch

PROBE = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return value, time.perf_counter() - start


def load_and_probe(load, path, device, dtype):
    """Seconds to load a model and finish one forward pass, and the forward pass alone."""
    batch = PackedBatch.from_token_lists([esm2.tokenize(PROBE)]).to(device)

    def run():
        model, _ = load(path, device, dtype)
        with torch.inference_mode():
            model(batch)
        return model

    model, total = timed(run)
    with torch.inference_mode():
        _, forward = timed(lambda: model(batch))
    return {"load_s": round(total - forward, 2), "load_and_forward_s": round(total, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    args.workdir.mkdir(parents=True, exist_ok=True)
    pt = args.workdir / "esm2_t36_3B_UR50D.pt"
    if not pt.exists():
        write_esm2(
            pt,
            **{
                k: getattr(ESM2_PRESETS[pt.stem], k)
                for k in ("num_layers", "embed_dim", "attention_heads")
            },
        )
    results = {
        "esm2_t36_3B_UR50D": {
            "checkpoint_bytes": pt.stat().st_size,
            "from_fair_esm_pt": load_and_probe(load_esm2, pt, device, dtype),
        }
    }
    directory = args.workdir / "DNABERT-S"
    if not directory.exists():
        tokenizer = train_dna_tokenizer(["ACGT" * 50], 4096)
        write_dnabert_s(directory, DNABertConfig(), tokenizer)
    _, dnabert_s_s = timed(lambda: load_dnabert_s(directory, device, dtype))
    results["DNABERT-S"] = {"load_s": round(dnabert_s_s, 2)}
    device_name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    save(
        "model_load",
        device_name,
        args.out,
        dtype=str(dtype),
        torch=torch.__version__,
        results=results,
    )


if __name__ == "__main__":
    main()
