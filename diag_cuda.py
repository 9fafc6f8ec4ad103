import ctypes
import importlib
import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""
cuda = ctypes.CDLL("libcuda.so.1")


def probe(step):
    n = ctypes.c_int()
    r = cuda.cuDeviceGetCount(ctypes.byref(n))
    print(f"{step}: cuDeviceGetCount -> {r} n={n.value} (3: driver not initialized)", flush=True)


probe("start")
import torch  # noqa: E402

probe("import torch")
import virnucpro.stages.embed  # noqa: E402,F401

probe("import virnucpro.stages.embed")
importlib.import_module("torch._inductor.compile_fx")
probe("import compiler")
from virnucpro.demo import build_demo_models  # noqa: E402

build_demo_models("/tmp/d/esm2_t4_demo.pt", "/tmp/d/DNABERT-S-demo", ["/tmp/d/500_model.pth"])
probe("demo models built")
from virnucpro.models.encoders import ENCODERS  # noqa: E402

paths = {"esm2": "/tmp/d/esm2_t4_demo.pt", "dnabert_s": "/tmp/d/DNABERT-S-demo"}
encoders = {k: ENCODERS[k].read(p) for k, p in paths.items()}
probe("read")
for k, p in paths.items():
    ENCODERS[k].tokenizer(p)(["MKVLAAGG" if k == "esm2" else "ACGTACGTAAGT"])
probe("tokenized")
print("nvml count", torch.cuda._device_count_nvml(), flush=True)
probe("nvml count")
print("device_count", torch.cuda.device_count(), flush=True)
probe("device_count")
if os.environ.get("PROBE_IS_AVAILABLE"):
    print("is_available", torch.cuda.is_available(), flush=True)
probe("is_available")
os.environ["CUDA_VISIBLE_DEVICES"] = "0"  # as a lease sets it
try:
    print("after the lease:", torch.cuda.is_available(), torch.zeros(1, device="cuda"), flush=True)
except Exception as error:  # noqa: BLE001
    print("after the lease: FAILED", error, flush=True)
