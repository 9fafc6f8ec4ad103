"""The models a job embeds with, as the engine computes them: each one's checkpoint, read onto
the CPU and moved to its device apart, its tokenizer, width, batch budget and pooling
(`encoder(batch)` gives one float32 vector per sequence)."""

import copy

import torch

from ..planning.sizing import esm2_tokens
from ..sequences.frames import stored_bases
from . import checkpoints, dnabert_s, esm2
from .checkpoints import on_device, read_through
from .compile import compile_blocks


class Encoder:
    """A model and its pooling: `encoder(batch)` gives one float32 vector per sequence."""

    def __init__(self, model, info):
        self.model, self.info = model, info

    @classmethod
    def read(cls, path):
        """The encoder on the CPU, its weights as the checkpoint holds them, the checkpoint
        read through once so that its weights reach the GPU from memory."""
        read_through(cls.weights_file(path))
        return cls(*cls.read_model(path))

    @classmethod
    def load(cls, path, device, dtype):
        """The encoder on `device` in `dtype` (tests, benchmarks)."""
        return cls(*cls.read_model(path)).to(device, dtype)

    @classmethod
    def tokenize(cls, path, texts):
        """A TokenStore of `texts`."""
        return cls.tokenizer(path)(texts)

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    def to(self, device, dtype):
        """The encoder on `device` in `dtype`, its weights checked finite there (on_device), its
        blocks compiled where that is a GPU (compile_blocks)."""
        self.model = compile_blocks(on_device(self.model, device, dtype, self.info["path"]))
        return self

    def free(self):
        """Give the device the memory of the model's weights back, whatever else still holds
        them (the compiler's caches of its graphs' inputs): each emptied in place. The
        encoder keeps its name, width and dtype, for the file's attributes."""
        with torch.no_grad():
            for tensor in [*self.model.parameters(), *self.model.buffers()]:
                tensor.data = tensor.new_empty(0)

    def float32_copy(self):
        """The same encoder in float32, for batches that overflow in half precision."""
        return type(self)(copy.deepcopy(self.model).float(), self.info)


class ProteinEncoder(Encoder):
    """ESM-2: residue-mean of the last layer over <cls> + protein + <eos> (SPEC §4)."""

    kind, name, column, alibi = "esm2", "ESM-2", "protein", False

    read_model = staticmethod(checkpoints.read_esm2)

    @staticmethod
    def weights_file(path):
        return path

    @staticmethod
    def tokenizer(path):
        return esm2.tokenize_all

    @staticmethod
    def most_tokens(residues):
        """The tokens of a frame of `residues` residues, for the longest of a shard."""
        return int(esm2_tokens(residues))

    @property
    def dim(self):
        return self.model.cfg.embed_dim

    @property
    def bytes_per_token(self):
        """Activation memory of one token in one layer, with room for the compiled kernels."""
        return 4 * (8 * self.dim + 3 * 4 * self.dim)

    # ESM-2 3B's tokens/s peaks here on an H200 (benchmarks/results/2026-11-21-h200-profile.txt)
    max_batch_tokens = 98304

    def __call__(self, batch):
        return esm2.residue_mean(self.model(batch), batch)


class NucleotideEncoder(Encoder):
    """DNABERT-S: mean of the last layer over all tokens of the frame's nucleotides (SPEC §3)."""

    kind, name, column, alibi = "dnabert_s", "DNABERT-S", "nucleotide", True

    read_model = staticmethod(checkpoints.read_dnabert_s)
    weights_file = staticmethod(checkpoints.dnabert_s_weights_file)

    @staticmethod
    def tokenizer(path):
        tokenizer = dnabert_s.load_tokenizer(path)
        return lambda texts: dnabert_s.tokenize_all(tokenizer, texts)

    @staticmethod
    def most_tokens(residues):
        """The most tokens a frame of `residues` residues can take, for the longest of a shard."""
        return dnabert_s.most_tokens(stored_bases(residues))

    @property
    def dim(self):
        return self.model.cfg.hidden_size

    @property
    def bytes_per_token(self):
        """As for ESM-2, plus the padded attention's [B, H, L, L] mask (L about 128)."""
        cfg = self.model.cfg
        return 4 * (8 * self.dim + 3 * cfg.intermediate_size) + 2 * cfg.num_attention_heads * 128

    # DNABERT-S's tokens/s peaks here on an H200 (benchmarks/results/2026-11-21-h200-profile.txt)
    max_batch_tokens = 131072

    def __call__(self, batch):
        return dnabert_s.all_token_mean(self.model(batch), batch)


ENCODERS = {"dnabert_s": NucleotideEncoder, "esm2": ProteinEncoder}  # in features order
