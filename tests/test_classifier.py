"""The original's pickled classifiers load without running code, and score as they did; a file
that is not a VirNucPro MLPClassifier is refused, naming what differs, before anything in it is
built or allocated."""

import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from virnucpro.demo.random_checkpoints import write_pickled_classifier
from virnucpro.models.checkpoints import load_classifier
from virnucpro.models.classifier import MLPClassifier, save_classifier, scores

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


# ---- files that are not a VirNucPro MLPClassifier, written by hand --------------------------


def torch_archive(path, pickle_bytes):
    """A file laid out as torch.save lays one out (a zip of <folder>/data.pkl, byteorder,
    version), holding the given pickle."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return path


def call(qualified_name, *ints):
    """Pickle opcodes (protocol 2) for `module.name(*ints)`: GLOBAL, MARK, BININTs, TUPLE,
    REDUCE, STOP."""
    module, _, name = qualified_name.rpartition(".")
    args = b"".join(b"J" + struct.pack("<i", i) for i in ints)
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"(" + args + b"tR."


@pytest.fixture
def linear_constructions(monkeypatch):
    """The arguments of every nn.Linear given memory while the test runs (off the meta device,
    where the loader lays out what it expects)."""
    calls, construct = [], nn.Linear.__init__

    def recorded(self, *args, **kwargs):
        construct(self, *args, **kwargs)
        if not self.weight.is_meta:
            calls.append(args)

    monkeypatch.setattr(nn.Linear, "__init__", recorded)
    return calls


@pytest.mark.parametrize(
    "call_args",
    [("__main__.MLPClassifier", 6000, 512, 2), ("torch.nn.modules.linear.Linear", 6000, 512)],
    ids=["MLPClassifier", "Linear"],
)
def test_a_pickle_constructing_layers_of_its_own_shapes_is_refused_unbuilt(
    tmp_path, linear_constructions, call_args
):
    """Such a pickle once made the loader build MLPClassifier(40000, 40000, 2): 12.7 GB."""
    path = torch_archive(tmp_path / "wide.pth", call(*call_args))
    with pytest.raises(ValueError) as error:
        load_classifier(path)
    assert linear_constructions == []
    assert f"refusing to load {path}: it constructs {call_args[0]} with arguments" in str(
        error.value
    )


def test_a_pickle_allocating_memory_is_refused_before_it_allocates(tmp_path):
    """torch.load's own allow-list runs bytearray(n) for any n."""
    path = torch_archive(tmp_path / "bomb.pth", call("builtins.bytearray", 64 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as error:
            load_classifier(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    assert f"refusing to load {path}: it refers to builtins.bytearray" in str(error.value)


def script_class(build):
    """A module class named as train.py's (__main__.MLPClassifier), its layers made by
    `build(self)`."""

    def __init__(self):
        nn.Module.__init__(self)
        build(self)

    return type("MLPClassifier", (nn.Module,), {"__init__": __init__, "__module__": "__main__"})


def mlp(input_dim=3328, hidden=512, eps=1e-5, bn=nn.BatchNorm1d):
    def build(module):
        module.hidden_layer = nn.Linear(input_dim, hidden)
        module.bn1 = bn(hidden, eps=eps) if bn is nn.BatchNorm1d else bn(hidden, hidden)
        module.output_layer = nn.Linear(hidden, 2)
        module.dropout = nn.Dropout(0.5)

    return build


def renamed(module):
    module.fc, module.bn = nn.Linear(3328, 512), nn.BatchNorm1d(512)
    module.out, module.dropout = nn.Linear(512, 2), nn.Dropout(0.5)


def with_a_view(module):
    mlp()(module)
    module.hidden_layer.weight = nn.Parameter(torch.zeros(1024, 3328)[:512])


ODD_MODULES = {
    "renamed layers": (renamed, r"its module bn is .*BatchNorm1d where an MLPClassifier has none"),
    "hidden 256": (mlp(hidden=256), r"its bn1\.bias is torch\.float32 \[256\] where .* \[512\]"),
    "too wide": (mlp(input_dim=6000), r"its hidden_layer\.weight has shape \[512, 6000\]"),
    "Linear for BatchNorm": (
        mlp(bn=nn.Linear),
        r"its module bn1 is torch\.nn\.modules\.linear\.Linear where an MLPClassifier has "
        r"torch\.nn\.modules\.batchnorm\.BatchNorm1d",
    ),
    "other eps": (mlp(eps=1e-3), r"its bn1\.eps is 0\.001 where an MLPClassifier has 1e-05"),
    "a view": (with_a_view, r"its hidden_layer\.weight is a view of a storage larger than it"),
}


@pytest.mark.parametrize("name", ODD_MODULES)
def test_a_pickled_module_that_is_not_a_virnucpro_mlp_is_refused_by_what_differs(
    tmp_path, monkeypatch, name
):
    build, message = ODD_MODULES[name]
    cls = script_class(build)
    monkeypatch.setattr(sys.modules["__main__"], "MLPClassifier", cls, raising=False)
    path = tmp_path / "odd_model.pth"
    torch.save(cls(), path)
    with pytest.raises(
        ValueError, match=rf"refusing to load {path}: {message}.* Use the published"
    ):
        load_classifier(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (nn.Linear(3328, 512), r"its module \(top\) is torch\.nn\.modules\.linear\.Linear where"),
        ({"model": nn.Linear(2, 2).state_dict()}, r"the object it holds is a dict, not a module"),
    ],
    ids=["a Linear", "a state dict"],
)
def test_a_pickle_of_something_else_is_refused_by_what_it_holds(tmp_path, content, message):
    path = tmp_path / "other.pth"
    torch.save(content, path)
    with pytest.raises(ValueError, match=rf"refusing to load {path}: {message}"):
        load_classifier(path)


def test_the_widest_classifier_virnucpro_can_have_loads_and_a_wider_one_is_refused(tmp_path):
    """DNABERT-S's 768 features beside the widest ESM-2's (15B, 5120)."""
    widest = write_pickled_classifier(tmp_path / "widest.pth", 768 + 5120)
    assert load_classifier(widest).input_dim == 5888
    wider = write_pickled_classifier(tmp_path / "wider.pth", 768 + 5120 + 1)
    with pytest.raises(ValueError, match=r"hidden_layer\.weight has shape \[512, 5889\]"):
        load_classifier(wider)


def test_a_safetensors_file_is_checked_like_a_pickle(tmp_path):
    state = MLPClassifier(3328, 256).state_dict()
    odd = tmp_path / "odd.safetensors"
    safetensors.torch.save_file(state, odd, metadata={"format": "virnucpro-mlp"})
    with pytest.raises(
        ValueError, match=r"odd\.safetensors: its bn1\.bias is torch\.float32 \[256\]"
    ):
        load_classifier(odd)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=r"garbage\.safetensors: it is not a readable safetensors"):
        load_classifier(garbage)


def test_a_safetensors_classifier_with_a_nan_weight_is_refused(tmp_path):
    """As the original's pickles are (tests/test_model_files.py)."""
    model = MLPClassifier(96).eval()
    with torch.no_grad():
        model.bn1.weight[3] = float("nan")
    save_classifier(model, tmp_path / "nan.safetensors")
    with pytest.raises(
        ValueError, match=r"nan\.safetensors: its bn1\.weight holds NaN or infinite values"
    ):
        load_classifier(tmp_path / "nan.safetensors")


def test_a_pickled_module_that_contains_itself_is_refused(tmp_path):
    """A module whose `_modules` holds the module itself (pickle's memo makes the loop)."""

    def text(value):
        return b"X" + struct.pack("<I", len(value)) + value.encode()

    loop = (
        b"\x80\x02c__main__\nMLPClassifier\n)\x81q\x00"  # NEWOBJ, kept as memo 0
        + b"}("
        + text("_modules")
        + b"}("
        + text("hidden_layer")
        + b"h\x00uub."  # BINGET 0 (itself), SETITEMS, SETITEMS, BUILD, STOP
    )
    path = torch_archive(tmp_path / "loop.pth", loop)
    with pytest.raises(ValueError, match=r"loop\.pth: its module hidden_layer appears twice"):
        load_classifier(path)
