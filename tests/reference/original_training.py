"""The original VirNucPro's training: the frames its datasets kept and train.py's fit (SPEC
§7), written from the SPEC text alone and independently of virnucpro.training.fit and
virnucpro.training.frames, to check the package against.

The fit keeps the original script's shape: a classifier class of its own that calls
init_weights, an EarlyStopping object that stores `model.state_dict()` (uncopied in legacy
form, as the original), DataLoaders for both sets and scikit-learn's metric definitions written
out, the ROC-AUC by counting pairs. Both DataLoaders get an explicit generator, so that the global
generator, seeded once, feeds only the initial weights and dropout.
"""

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset

from .original import frame_protein, revcomp


class MLPClassifier(nn.Module):
    def __init__(self, input_dim, hidden_dim=512, num_class=2):
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)
        self.init_weights()

    def init_weights(self):
        nn.init.xavier_uniform_(self.hidden_layer.weight)
        nn.init.xavier_uniform_(self.output_layer.weight)

    def forward(self, x):
        x = self.hidden_layer(x)
        x = self.bn1(x)
        x = F.relu(x)
        x = self.dropout(x)
        return self.output_layer(x)


class EarlyStopping:
    def __init__(self, legacy, patience=5, delta=0):
        self.legacy = legacy
        self.patience = patience
        self.delta = delta
        self.best_score = None
        self.best_epoch = None
        self.early_stop_counter = 0
        self.best_model_wts = None

    def __call__(self, val_loss, model, epoch):
        if self.best_score is None or val_loss < self.best_score - self.delta:
            self.best_score = val_loss
            self.best_epoch = epoch
            state = model.state_dict()
            self.best_model_wts = state if self.legacy else copy.deepcopy(state)
            self.early_stop_counter = 0
            return False
        self.early_stop_counter += 1
        if self.early_stop_counter >= self.patience:
            model.load_state_dict(self.best_model_wts)
            return True
        return False


def evaluate(model, loader):
    """(loss, accuracy, precision, recall, f1, auc) on a test loader, as train.py's test_model."""
    model.eval()
    labels, predictions, probabilities = [], [], []
    total_loss = 0.0
    with torch.no_grad():
        for data, target in loader:
            outputs = model(data)
            total_loss += F.cross_entropy(outputs, target).item()
            labels.extend(target.tolist())
            predictions.extend(torch.max(outputs, 1)[1].tolist())
            probabilities.extend(F.softmax(outputs, dim=1)[:, 1].tolist())
    labels, predictions = np.array(labels), np.array(predictions)
    tp = int(np.sum((predictions == 1) & (labels == 1)))
    fp = int(np.sum((predictions == 1) & (labels == 0)))
    fn = int(np.sum((predictions == 0) & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    positives = [p for p, y in zip(probabilities, labels, strict=True) if y == 1]
    negatives = [p for p, y in zip(probabilities, labels, strict=True) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    auc = wins / (len(positives) * len(negatives))
    accuracy = float(np.mean(predictions == labels))
    return total_loss / len(loader), accuracy, precision, recall, f1, auc


def train(train_x, train_y, test_x, test_y, seed, legacy, num_epochs=200):
    """(model in eval mode, [per-epoch dict], epoch of the returned weights).

    The corrected form also restores the best weights when all epochs run without early
    stopping; the original saved nothing then."""
    torch.manual_seed(seed)
    model = MLPClassifier(train_x.shape[1])
    train_loader = DataLoader(
        TensorDataset(train_x, train_y),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    test_loader = DataLoader(
        TensorDataset(test_x, test_y), batch_size=32, shuffle=False, generator=torch.Generator()
    )
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.0002, momentum=0.9)
    scheduler = StepLR(optimizer, step_size=10, gamma=0.85)
    early_stopping = EarlyStopping(legacy)
    history = []
    for epoch in range(num_epochs):
        model.train()
        running_loss = 0.0
        for batch_data, batch_labels in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(batch_data), batch_labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        val_loss, accuracy, precision, recall, f1, auc = evaluate(model, test_loader)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": running_loss / len(train_loader),
                "loss": val_loss,
                "accuracy": accuracy,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "roc_auc": auc,
            }
        )
        if early_stopping(val_loss, model, epoch + 1):
            break
        scheduler.step()
    if not legacy:
        model.load_state_dict(early_stopping.best_model_wts)
    return model.eval(), history, len(history) if legacy else early_stopping.best_epoch


AMBIGUOUS_BASES = {"N", "R", "Y", "M", "K", "S", "W", "H", "B", "V", "D"}


def training_frames(chunks, refseq_proteins):
    """[(frame id, nucleotide, protein)] of (chunk id, sequence) pairs, as the original's
    training datasets selected them (SPEC §7): chunks with an ambiguity code skipped, frames
    kept when stop-free and within a CDS translation of their own record."""
    selected = []
    for seqid, text in chunks:
        sequence = text.upper()
        if any(base in sequence for base in AMBIGUOUS_BASES):
            continue
        proteins = refseq_proteins.get(seqid.split("_chunk_")[0], [])
        for number in range(1, 7):
            strand = sequence if number <= 3 else revcomp(sequence)
            offset = (number - 1) % 3
            protein = frame_protein(strand, offset)
            if protein == "" or "*" in protein:
                continue
            if not any(protein in reference for reference in proteins):
                continue
            name = seqid + ("F" if number <= 3 else "R") + str(offset + 1)
            selected.append((name, strand[offset : offset + 1 + 3 * len(protein)], protein))
    return selected
