"""The original's pickled classifiers load without running code, and score as they did."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from virnucpro.models.classifier import load_classifier, save_classifier, scores

# What the original train.py does: a script defines MLPClassifier and torch.save()s the module.
TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    class MLPClassifier(nn.Module):
        def __init__(self, input_dim, hidden_dim, num_class):
            super(MLPClassifier, self).__init__()
            self.hidden_layer = nn.Linear(input_dim, hidden_dim)
            self.bn1 = nn.BatchNorm1d(hidden_dim)
            self.output_layer = nn.Linear(hidden_dim, num_class)
            self.dropout = nn.Dropout(0.5)

        def forward(self, x):
            x = self.hidden_layer(x)
            x = self.bn1(x)
            x = F.relu(x)
            x = self.dropout(x)
            x = self.output_layer(x)
            return x

    torch.manual_seed(0)
    model = MLPClassifier(3328, 512, 2)
    model.train()
    for _ in range(3):  # a few batches so BatchNorm's running statistics are not 0 and 1
        model(torch.randn(64, 3328) * 2 + 0.5)
    torch.save(model, sys.argv[1])
    model.eval()
    features = torch.from_numpy(np.load(sys.argv[2]))
    with torch.no_grad():
        np.save(sys.argv[3], torch.softmax(model(features), dim=1).numpy())
""")


def run_script(tmp_path, source, *args):
    script = tmp_path / "train.py"
    script.write_text(source)
    subprocess.run([sys.executable, str(script), *map(str, args)], check=True, cwd=tmp_path)


def test_the_original_pickle_loads_and_scores_like_the_saved_module(tmp_path):
    features = np.random.default_rng(0).normal(size=(50, 3328)).astype(np.float32)
    np.save(tmp_path / "x.npy", features)
    run_script(
        tmp_path,
        TRAIN_SCRIPT,
        tmp_path / "500_model.pth",
        tmp_path / "x.npy",
        tmp_path / "expected.npy",
    )
    model = load_classifier(tmp_path / "500_model.pth")
    assert not model.training and model.input_dim == 3328
    got = scores(model, torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(got, np.load(tmp_path / "expected.npy"), rtol=0, atol=1e-7)

    save_classifier(model, tmp_path / "ours.safetensors")
    again = scores(load_classifier(tmp_path / "ours.safetensors"), torch.from_numpy(features))
    assert np.array_equal(again.numpy(), got)


EVIL = textwrap.dedent("""
    import os, sys, torch

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + sys.argv[2],))

    torch.save({"model": Payload()}, sys.argv[1])
""")

OTHER_CLASS = (
    TRAIN_SCRIPT.replace("class MLPClassifier", "class Classifier")
    .replace("MLPClassifier(", "Classifier(")
    .replace("super(MLPClassifier", "super(Classifier")
)


def test_a_pickle_that_would_run_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    run_script(tmp_path, EVIL, tmp_path / "evil.pth", marker)
    with pytest.raises(ValueError) as error:
        load_classifier(tmp_path / "evil.pth")
    assert "refusing to load" in str(error.value) and "system" in str(error.value)
    assert str(tmp_path / "evil.pth") in str(error.value)
    assert not marker.exists()


def test_a_pickle_of_another_class_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3328), dtype=np.float32))
    run_script(
        tmp_path, OTHER_CLASS, tmp_path / "other.pth", tmp_path / "x.npy", tmp_path / "y.npy"
    )
    with pytest.raises(ValueError, match=r"refusing to load .*__main__\.Classifier"):
        load_classifier(tmp_path / "other.pth")
    assert os.path.exists(tmp_path / "other.pth")
