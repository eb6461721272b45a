#!/usr/bin/env python3
"""The PyTorch side of `bench/compare`: the same workloads as `convlearn bench`, with the same shapes,
batch sizes, thread count and data, printing the same JSON.

    python3 bench/pytorch_reference.py [WORKLOAD ...] [--quick] [--threads 2] [--variant fp32|fp32-cl|bf16-cl]

--variant picks PyTorch's CPU mode: `fp32` (eager, NCHW: the default), `fp32-cl` (model and input in
`channels_last`) or `bf16-cl` (`channels_last` under `torch.autocast("cpu", torch.bfloat16)`: oneDNN's
bf16 kernels, AMX or AVX512-BF16 where the CPU has them). The data pipeline has no model: fp32 only.
Run with ONEDNN_VERBOSE=1 to see which oneDNN kernels ran (`bench/compare` reports them).

Needs torch and torchvision (see the README's "Benchmarks" section); the data comes from
$CONVLEARN_DATA (default ../shared).
"""
import argparse
import gzip
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError as e:  # pragma: no cover - the message is the point
    sys.exit(f"pytorch_reference.py needs torch and torchvision ({e}); see the README's Benchmarks section")

VARIANTS = ["fp32", "fp32-cl", "bf16-cl"]
VARIANT = "fp32"  # set by main()


def channels_last():
    return VARIANT in ("fp32-cl", "bf16-cl")


def in_layout(t):
    """A batch as the variant wants it: channels-last for 4-d tensors in the -cl variants."""
    return t.contiguous(memory_format=torch.channels_last) if channels_last() and t.dim() == 4 else t


def laid_out(model):
    return model.to(memory_format=torch.channels_last) if channels_last() else model


def autocast():
    """bf16 products, fp32 master weights, as the bf16-cl variant computes."""
    import contextlib
    if VARIANT == "bf16-cl":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


DATA = Path(os.environ.get("CONVLEARN_DATA", Path(__file__).resolve().parent.parent.parent / "shared"))
WORKLOADS = ["small_cnn_train", "small_cnn_infer", "resnet18_train", "resnet18_infer",
             "mobilenet_v2_infer", "data_pipeline", "mnist_3_epochs", "fine_tune_hymenoptera"]


class SmallCnn(nn.Module):
    """conv3x3(1->32,pad1) ReLU maxpool2 conv3x3(32->64,pad1) ReLU maxpool2 fc(3136->128) ReLU fc(128->10)"""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(3136, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def random_batch(shape, classes):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    y = torch.tensor([(i * 7) % classes for i in range(shape[0])])
    return x, y


def time_train(model, shape, classes, warmup, steps):
    x, y = random_batch(shape, classes)
    x, model = in_layout(x), laid_out(model)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return steps * shape[0], time.perf_counter() - start


def time_infer(model, shape, classes, warmup, steps):
    x, _ = random_batch(shape, classes)
    x, model = in_layout(x), laid_out(model)
    model.eval()
    with torch.inference_mode(), autocast():
        for i in range(warmup + steps):
            if i == warmup:
                start = time.perf_counter()
            model(x)
    return steps * shape[0], time.perf_counter() - start


class Photos(torch.utils.data.Dataset):
    """The hymenoptera training photos, decoded with PIL and kept with the shorter side at most 448."""

    def __init__(self, root):
        self.files = sorted(p for c in sorted(root.iterdir()) if c.is_dir() for p in sorted(c.iterdir()))

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image
        try:
            im = Image.open(self.files[i]).convert("RGB")
        except Exception:  # a file that does not decode: skipped, as convlearn skips such files
            return None
        s = 448 / min(im.size)
        if s < 1:
            im = im.resize((round(im.width * s), round(im.height * s)), Image.BILINEAR)
        return im


def side_on(im, rng):
    """convlearn's side-on augmentation: a random 87.5 % square crop zoomed up to 1.1, resize 224,
    rotate ±10° (p = 0.75), horizontal flip (p = 0.5), lighting ±5 %; then [-1, 1] scaling."""
    import torchvision.transforms.v2.functional as TF
    side = min(im.size) * 0.875 / rng.uniform(1.0, 1.1)
    x0, y0 = rng.uniform(0, im.width - side), rng.uniform(0, im.height - side)
    t = TF.pil_to_tensor(im.crop((x0, y0, x0 + side, y0 + side)).resize((224, 224)))
    if rng.random() < 0.75:
        t = TF.rotate(t, rng.uniform(-10, 10))
    if rng.random() < 0.5:
        t = TF.horizontal_flip(t)
    t = t.float() / 255
    t = ((t - 0.5) * (1 + rng.uniform(-0.05, 0.05)) + 0.5 + rng.uniform(-0.05, 0.05)).clamp(0, 1)
    return (t - 0.5) / 0.5


def collate_keep(batch):
    return [b for b in batch if b is not None]


def time_pipeline(threads):
    start = time.perf_counter()
    loader = torch.utils.data.DataLoader(Photos(DATA / "data/hymenoptera/train"), batch_size=32,
                                         num_workers=threads, collate_fn=collate_keep)
    photos = [im for batch in loader for im in batch]
    images = 0
    for epoch in range(2):
        rng = random.Random(epoch)
        order = list(range(len(photos)))
        rng.shuffle(order)
        batches = [order[i:i + 32] for i in range(0, len(order), 32)]
        # Two threads prepare samples, as rayon does for convlearn.
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(threads) as pool:
            for idx in batches:
                seeds = [random.Random(epoch * 100003 + i) for i in idx]
                torch.stack(list(pool.map(side_on, [photos[i] for i in idx], seeds)))
                images += len(idx)
    return images, time.perf_counter() - start


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def mnist_3_epochs(quick):
    d = DATA / "data/mnist"
    norm = lambda x: ((x.float() / 255) - 0.1307) / 0.3081
    xtr, ytr = norm(read_idx(d / "train-images-idx3-ubyte.gz")).unsqueeze(1), read_idx(d / "train-labels-idx1-ubyte.gz").long()
    xte, yte = norm(read_idx(d / "t10k-images-idx3-ubyte.gz")).unsqueeze(1), read_idx(d / "t10k-labels-idx1-ubyte.gz").long()
    if quick:
        xtr, ytr = xtr[:2000], ytr[:2000]
    epochs = 1 if quick else 3
    torch.manual_seed(42)
    model = laid_out(SmallCnn())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    steps = epochs * ((len(xtr) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(model(in_layout(xtr[idx])), ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.inference_mode(), autocast():
            acc = sum((model(in_layout(xte[i:i + 256])).argmax(1) == yte[i:i + 256]).sum().item() for i in range(0, len(xte), 256)) / len(xte)
    return epochs * len(xtr), time.perf_counter() - start, acc


class Conv2dSame(nn.Module):
    """TensorFlow 'SAME' padding for the stride-2 convolutions of the TFLite MobileNetV2 weights."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv
        conv.padding = (0, 0)

    def forward(self, x):
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        pad = max((-(-x.shape[-1] // s) - 1) * s + k - x.shape[-1], 0)
        return self.conv(F.pad(x, [pad // 2, pad - pad // 2, pad // 2, pad - pad // 2]))


def load_safetensors(path):
    """A safetensors file's tensors (F32/I64), read without the `safetensors` package."""
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": torch.float32, "I64": torch.int64}
    tensors = {}
    for name, t in header.items():
        if name != "__metadata__":
            start, end = t["data_offsets"]
            data = bytearray(raw[8 + n + start:8 + n + end])
            tensors[name] = torch.frombuffer(data, dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return tensors


def fine_tune_hymenoptera(threads, quick):
    """The weights README's reference: the shared MobileNetV2 (TF 'SAME'), a new head, the body (BN
    included) frozen, 3 epochs of Adam at 224 px with side-on augmentation, validation accuracy."""
    from PIL import Image
    import torchvision.transforms.v2.functional  # noqa: F401 (pil_to_tensor below)
    torch.manual_seed(42)
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(load_safetensors(DATA / "weights/mobilenet_v2_imagenet_from_tflite.safetensors"))
    for name in ["0.0", "2.conv.1.0", "4.conv.1.0", "7.conv.1.0", "14.conv.1.0"]:
        parent = model.features
        *path, last = name.split(".")
        for p in path:
            parent = parent[int(p)] if p.isdigit() else getattr(parent, p)
        parent[int(last)] = Conv2dSame(parent[int(last)])
    for p in model.parameters():
        p.requires_grad = False
    model.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 2))
    model = laid_out(model)
    start = time.perf_counter()
    train = [im for b in torch.utils.data.DataLoader(Photos(DATA / "data/hymenoptera/train"), batch_size=32, num_workers=threads, collate_fn=collate_keep) for im in b]
    labels = [0 if "/ants/" in str(f) else 1 for f in Photos(DATA / "data/hymenoptera/train").files]
    assert len(labels) == len(train), "every training photo decodes"
    vfiles = Photos(DATA / "data/hymenoptera/val").files
    vlabels = torch.tensor([0 if "/ants/" in str(f) else 1 for f in vfiles])

    def evaluate(im):
        w, h = im.size
        c = im.crop((w * 0.0625, h * 0.0625, w * 0.9375, h * 0.9375)).resize((224, 224), Image.BILINEAR)
        return (torchvision.transforms.v2.functional.pil_to_tensor(c).float() / 127.5) - 1

    valid = torch.stack([evaluate(Image.open(f).convert("RGB")) for f in vfiles])
    opt = torch.optim.Adam(model.classifier.parameters(), lr=1e-3)
    epochs = 1 if quick else 3
    for epoch in range(epochs):
        model.train()
        model.features.eval()  # BatchNorm frozen
        rng = random.Random(epoch)
        order = list(range(len(train)))
        rng.shuffle(order)
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            x = torch.stack([side_on(train[j], random.Random(epoch * 100003 + j)) for j in idx])
            y = torch.tensor([labels[j] for j in idx])
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(model(in_layout(x)), y)
            loss.backward()
            opt.step()
    model.eval()
    with torch.inference_mode(), autocast():
        acc = (model(in_layout(valid)).argmax(1) == vlabels).float().mean().item()
    return epochs * len(train), time.perf_counter() - start, acc


def run(name, quick, threads):
    warm, steps = (1, 2) if quick else (3, 20)
    acc = None
    if name == "small_cnn_train":
        images, secs = time_train(SmallCnn(), (64, 1, 28, 28), 10, warm * 3, steps * 5)
    elif name == "small_cnn_infer":
        images, secs = time_infer(SmallCnn(), (64, 1, 28, 28), 10, warm * 3, steps * 10)
    elif name == "resnet18_train":
        images, secs = time_train(torchvision.models.resnet18(), (16, 3, 128, 128), 1000, warm, steps // 2)
    elif name == "resnet18_infer":
        images, secs = time_infer(torchvision.models.resnet18(), (8, 3, 224, 224), 1000, warm, steps)
    elif name == "mobilenet_v2_infer":
        images, secs = time_infer(torchvision.models.mobilenet_v2(), (8, 3, 224, 224), 1000, warm, steps)
    elif name == "data_pipeline":
        images, secs = time_pipeline(threads)
    elif name == "mnist_3_epochs":
        images, secs, acc = mnist_3_epochs(quick)
    elif name == "fine_tune_hymenoptera":
        images, secs, acc = fine_tune_hymenoptera(threads, quick)
    else:
        sys.exit(f"unknown workload '{name}': expected one of {', '.join(WORKLOADS)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"workload": name, "variant": VARIANT, "images_per_second": images / secs, "images": images, "seconds": secs,
            "peak_rss_mib": peak, "accuracy": acc, "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--variant", choices=VARIANTS, default="fp32")
    a = ap.parse_args()
    global VARIANT
    VARIANT = a.variant
    torch.set_num_threads(a.threads)
    names = a.workloads or [w for w in WORKLOADS if w not in ("mnist_3_epochs", "fine_tune_hymenoptera")]
    results = [run(n, a.quick, a.threads) for n in names]
    if a.json:
        print(json.dumps({"engine": f"pytorch {torch.__version__}", "results": results}))
    else:
        for r in results:
            print(f"{r['workload']:24} {VARIANT:8} {r['images_per_second']:9.1f} images/s, peak memory {r['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
