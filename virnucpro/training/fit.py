"""Fitting the VirNucPro MLP as the original train.py fitted it (SPEC §7): its split, optimiser,
learning-rate schedule, early stopping and per-epoch test metrics, seeded so that a fit can be
repeated exactly."""

import copy
import logging
import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..models.classifier import MLPClassifier

logger = logging.getLogger(__name__)

BATCH_SIZE = 32
LEARNING_RATE, MOMENTUM = 2e-4, 0.9
LR_STEP_EPOCHS, LR_GAMMA = 10, 0.85
MAX_EPOCHS = 200
# Training stops once the test loss has not fallen below best - MIN_DELTA for PATIENCE epochs
PATIENCE, MIN_DELTA = 5, 0.0


def split_indices(n, seed=42, test_fraction=0.1):
    """(train, test) indices of `n` frames, as the original split them: range(n) shuffled as
    `random.seed(seed); random.shuffle(indices)` shuffles it, the first int(n * test_fraction)
    of it the test set (int() rounds down, as the original's `int(total_size * 0.1)`: 10% of
    25 frames is 2)."""
    indices = list(range(n))
    # A Random of its own, seeded alike, draws the same shuffle and leaves the global one be
    random.Random(seed).shuffle(indices)
    cut = int(n * test_fraction)
    return indices[cut:], indices[:cut]


def fit_classifier(
    train_features,
    train_labels,
    test_features,
    test_labels,
    seed,
    legacy=False,
    max_epochs=MAX_EPOCHS,
    log=logger.info,
):
    """Train an MLPClassifier on [N, input_dim] features and 0/1 labels (1 = virus) as the
    original did, and return (the model in eval mode, history, epoch).

    history holds a dict per epoch run: `epoch` (from 1), `train_loss` (the mean of its batches'
    losses) and evaluate()'s test-set metrics, which `log` is also given as one line. Training
    stops after max_epochs, or once the test loss has not improved for PATIENCE epochs. The
    weights returned, and `epoch`, are those of the epoch with the lowest test loss; with
    legacy=True they are the last epoch's, as the original's were.

    It trains on the device the features are on. The initial weights and dropout draw on the
    global generator (nn.Linear and nn.Dropout know no other) and the batch order on one of its
    own, both seeded with `seed`; the global generator's state is restored afterwards. On the
    CPU, the same inputs and seed give bit-identical weights.
    """
    device = train_features.device
    train_set = _Frames(train_features.float(), _as_labels(train_labels, device))
    if not len(train_set) or not len(test_features) or max_epochs < 1:
        raise ValueError("fitting needs a training frame, a test frame and at least one epoch")
    if len(train_set) % BATCH_SIZE == 1:
        # The original fails here too: BatchNorm cannot normalise a batch of one in training
        raise ValueError(
            f"{len(train_set)} training frames leave a last batch of one frame, which "
            "BatchNorm cannot train on; move a frame between the training and test sets"
        )
    cuda_devices = [device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        # Seeded one by one: torch.manual_seed would also reseed GPUs that fork_rng leaves be
        torch.default_generator.manual_seed(seed)
        for index in cuda_devices:
            torch.cuda.default_generators[index].manual_seed(seed)
        model = _initial_model(train_features.shape[1]).to(device)
        loader = DataLoader(
            train_set,
            batch_size=BATCH_SIZE,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
            collate_fn=_batch_as_taken,
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, LR_STEP_EPOCHS, LR_GAMMA)
        steps = (_GraphedSteps if device.type == "cuda" else _Steps)(model, optimizer)
        history = []
        best_loss = best_epoch = best_state = None
        for epoch in range(1, max_epochs + 1):
            train_loss = _train_epoch(model, loader, steps)
            metrics = evaluate(model, test_features, test_labels)
            history.append({"epoch": epoch, "train_loss": train_loss, **metrics})
            log(_describe(history[-1], max_epochs))
            # The first epoch is the best so far whatever its loss, as in the original
            if best_loss is None or metrics["loss"] < best_loss - MIN_DELTA:
                best_loss, best_epoch = metrics["loss"], epoch
                # The original kept model.state_dict() uncopied (legacy): its tensors are the
                # live weights, so restoring them below leaves the last epoch's in place.
                best_state = model.state_dict() if legacy else copy.deepcopy(model.state_dict())
            elif epoch - best_epoch >= PATIENCE:
                break
            scheduler.step()
    model.load_state_dict(best_state)
    return model.eval(), history, epoch if legacy else best_epoch


class _Frames(TensorDataset):
    """The training frames, each batch taken by indexing each tensor once with the batch's
    indices (DataLoader's __getitems__), not frame by frame and stacked: the same batches, drawn
    in the same order by the same sampler, without 32 small copies a step, which made an epoch
    of 100,000 frames on a GPU take seconds."""

    def __getitems__(self, indices):
        index = torch.as_tensor(indices, device=self.tensors[0].device)
        return tuple(tensor[index] for tensor in self.tensors)


def _batch_as_taken(batch):
    return batch  # _Frames.__getitems__ gives the batch whole


def _initial_model(input_dim):
    """An MLPClassifier initialised as the original's: Linear's default initialisation, then
    Xavier-uniform weights for both Linear layers (their biases keep the default)."""
    model = MLPClassifier(input_dim)
    for layer in (model.hidden_layer, model.output_layer):
        nn.init.xavier_uniform_(layer.weight)
    return model


def _train_epoch(model, loader, steps):
    """One pass over the shuffled training set; the mean of its batches' losses."""
    model.train()
    steps.loss_sum.zero_()
    for features, labels in loader:
        steps(features, labels)
    return steps.loss_sum.item() / len(loader)


class _Steps:
    """The original's optimiser step, one per batch, each batch's loss added to `loss_sum`."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.loss_sum = _zero_sum(next(model.parameters()).device)

    def __call__(self, features, labels):
        self.optimizer.zero_grad()
        loss = F.cross_entropy(self.model(features), labels)
        loss.backward()
        self.optimizer.step()
        self.loss_sum += loss.detach()


class _GraphedSteps(_Steps):
    """On a GPU, the same step of a full batch captured once as a CUDA graph and replayed: a
    step of the MLP on 32 frames is microseconds of GPU work behind milliseconds of Python and
    kernel launches, which made a fit take longer than its frames' embedding
    (benchmarks/results/2026-11-22-training.md). Written here, as PyTorch's graph capture of a
    whole training step is its documented recipe (warm-up steps on a side stream, a capture,
    replays into static inputs), not a library call. The first WARM_UP steps run eagerly, on a
    side stream, for the optimiser's momentum buffers and the libraries' handles, which a capture
    cannot create; so does a batch of another size (an epoch's last). The graph holds the
    learning rate as a constant, so it is captured again when the schedule changes it.
    Replays are the same kernels each time: a fit repeats itself exactly on one GPU."""

    WARM_UP = 3

    def __init__(self, model, optimizer):
        super().__init__(model, optimizer)
        self.graph = self.features = self.labels = self.learning_rate = None
        self.taken = 0

    def __call__(self, features, labels):
        if len(features) != BATCH_SIZE:
            return super().__call__(features, labels)
        if self.taken < self.WARM_UP:
            self.taken += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                super().__call__(features, labels)
            torch.cuda.current_stream().wait_stream(side)
            return None
        if self.learning_rate != self.optimizer.param_groups[0]["lr"]:
            self._capture(features, labels)
        self.features.copy_(features)
        self.labels.copy_(labels)
        self.graph.replay()
        return None

    def _capture(self, features, labels):
        self.graph = None  # the last capture's memory back first
        self.features, self.labels = torch.empty_like(features), torch.empty_like(labels)
        self.learning_rate = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)  # the gradients: the graph's own memory
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            super().__call__(self.features, self.labels)


def _zero_sum(device):
    """A float64 sum on `device`, for 0-d float32 losses added one by one: the same sum as of
    their .item()s in Python floats, without making the CPU wait for the GPU at every one of an
    epoch's thousands of small steps, which had it idle between them."""
    return torch.zeros((), dtype=torch.float64, device=device)


@torch.no_grad()
def evaluate(model, features, labels):
    """The metrics the original logged for a labelled set, the model put in eval mode:
    {loss, accuracy, precision, recall, f1, roc_auc}, virus (1) the positive class.

    loss is the mean over batches of 32 frames, in order, of each batch's mean loss (so a short
    last batch weighs as much as a full one), as the original computed it; early stopping
    depends on it. Precision, recall and F1 are 0 where their denominator is, as scikit-learn's
    are by default.
    """
    model.eval()
    labels = _as_labels(labels, features.device)
    logits = [model(batch) for batch in features.float().split(BATCH_SIZE)]
    total_loss = _zero_sum(features.device)
    for batch_logits, batch_labels in zip(logits, labels.split(BATCH_SIZE), strict=True):
        total_loss += F.cross_entropy(batch_logits, batch_labels)
    mean_loss = total_loss.item() / len(logits)
    logits = torch.cat(logits)
    truth = labels.cpu().numpy() == 1
    called = logits.argmax(dim=1).cpu().numpy() == 1
    true_positives = np.sum(called & truth)
    return {
        "loss": mean_loss,
        "accuracy": float(np.mean(called == truth)),
        "precision": _ratio(true_positives, np.sum(called)),
        "recall": _ratio(true_positives, np.sum(truth)),
        "f1": _ratio(2 * true_positives, np.sum(called) + np.sum(truth)),
        "roc_auc": roc_auc(truth, torch.softmax(logits, dim=1)[:, 1].cpu().numpy()),
    }


def roc_auc(truth, scores):
    """Area under the ROC curve of 1-D `scores` for boolean `truth`; NaN when a class is
    absent, where the original's scikit-learn call would have raised and ended its training."""
    truth = np.asarray(truth, dtype=bool)
    return float(roc_auc_score(truth, scores)) if 0 < truth.sum() < truth.size else math.nan


def _ratio(numerator, denominator):
    return float(numerator / denominator) if denominator else 0.0


def _as_labels(labels, device):
    return torch.as_tensor(labels, dtype=torch.int64, device=device)


def _describe(row, max_epochs):
    """One log line for an epoch's history row."""
    return (
        f"epoch {row['epoch']}/{max_epochs}: train loss {row['train_loss']:.4f}, "
        f"test loss {row['loss']:.4f}, accuracy {row['accuracy']:.4f}, "
        f"precision {row['precision']:.4f}, recall {row['recall']:.4f}, F1 {row['f1']:.4f}, "
        f"ROC-AUC {row['roc_auc']:.4f}"
    )
