"""The peers that embed_throughput.py runs beside virnucpro, each as its users run it."""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import EsmConfig, EsmModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference import dnabert as dnabert_reference  # noqa: E402 - the plain DNABERT-S forward
from reference import fair_esm  # noqa: E402 - fair-esm run as the original ran it

__all__ = [
    "dnabert_reference",
    "fair_esm",
    "hf_esm_from_fair_esm",
    "hf_esm_embed",
    "dnabert_loop",
    "dnabert_padded",
    "timed",
]


def timed(fn):
    """(result, seconds) of fn() on the GPU's clock: synchronized before and after."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    torch.cuda.synchronize()
    return result, time.perf_counter() - start


def hf_esm_from_fair_esm(model, dtype, device="cuda"):
    """Hugging Face's EsmModel (SDPA attention) holding a fair-esm ESM2's weights."""
    config = EsmConfig(
        vocab_size=33,
        mask_token_id=32,
        pad_token_id=1,
        hidden_size=model.embed_dim,
        num_hidden_layers=model.num_layers,
        num_attention_heads=model.attention_heads,
        intermediate_size=4 * model.embed_dim,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        max_position_embeddings=1026,
        layer_norm_eps=1e-5,
        attn_implementation="sdpa",
    )
    hf = EsmModel(config, add_pooling_layer=False)
    names = {
        "self_attn.q_proj": "attention.self.query",
        "self_attn.k_proj": "attention.self.key",
        "self_attn.v_proj": "attention.self.value",
        "self_attn.out_proj": "attention.output.dense",
        "self_attn_layer_norm": "attention.LayerNorm",
        "fc1": "intermediate.dense",
        "fc2": "output.dense",
        "final_layer_norm": "LayerNorm",
    }
    state = {
        "embeddings.word_embeddings.weight": model.embed_tokens.weight,
        "encoder.emb_layer_norm_after.weight": model.emb_layer_norm_after.weight,
        "encoder.emb_layer_norm_after.bias": model.emb_layer_norm_after.bias,
    }
    for name, tensor in model.layers.state_dict().items():
        index, rest = name.split(".", 1)
        for theirs, ours in names.items():
            if rest.startswith(theirs + "."):
                state[f"encoder.layer.{index}.{ours}{rest[len(theirs) :]}"] = tensor
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all("inv_freq" in k or "contact_head" in k for k in missing), missing
    return hf.to(dtype=dtype, device=device).eval()


@torch.no_grad()
def hf_esm_embed(model, token_lists, batch_tokens):
    """Residue means from padded, length-sorted batches of at most batch_tokens padded tokens."""
    order = np.argsort([-len(t) for t in token_lists], kind="stable")
    out = torch.empty(len(token_lists), model.config.hidden_size)
    start = 0
    while start < len(order):
        width = len(token_lists[order[start]])
        end = min(len(order), start + max(1, batch_tokens // width))
        rows = order[start:end]
        ids = torch.ones(len(rows), width, dtype=torch.long)  # <pad> = 1
        for i, row in enumerate(rows):
            ids[i, : len(token_lists[row])] = torch.as_tensor(token_lists[row])
        ids = ids.to(model.device, non_blocking=True)
        mask = (ids != 1).long()
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        residues = mask.clone()
        residues[:, 0] = 0
        residues[torch.arange(len(rows)), mask.sum(1) - 1] = 0
        means = (hidden * residues[..., None]).sum(1) / residues.sum(1, keepdim=True)
        out[torch.as_tensor(rows)] = means.cpu()
        start = end
    return out


@torch.no_grad()
def dnabert_loop(state, token_lists):
    """The original: one sequence at a time, FP32, no mask."""
    return torch.stack(
        [
            dnabert_reference.embed_one(state, torch.as_tensor(t).cuda(), 12).cpu()
            for t in token_lists
        ]
    )


@torch.no_grad()
def dnabert_padded(state, token_lists, batch_size, dtype):
    """Length-sorted padded batches under autocast, mean over each sequence's own tokens."""
    order = np.argsort([-len(t) for t in token_lists], kind="stable")
    out = torch.empty(len(token_lists), state["embeddings.word_embeddings.weight"].shape[1])
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = len(token_lists[rows[0]])
        ids = torch.full((len(rows), width), 3, dtype=torch.long)  # [PAD] = 3
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(token_lists[row])] = torch.as_tensor(token_lists[row])
            mask[i, : len(token_lists[row])] = 1
        ids, mask = ids.cuda(), mask.cuda()
        with torch.autocast("cuda", dtype=dtype):
            hidden = dnabert_reference.forward(state, ids, mask, 12).float()
        means = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        out[torch.as_tensor(rows)] = means.cpu()
    return out
