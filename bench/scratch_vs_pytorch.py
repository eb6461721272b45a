"""The lesson's simple_cnn from scratch on a folder of small gray pictures, in convlearn and in
PyTorch, on the same files: the issue-17 check that `convlearn train DIR` reaches what PyTorch
reaches.

    TORCH_PY bench/scratch_vs_pytorch.py CONVLEARN_BIN WORKDIR [--seeds 3]

Writes WORKDIR/pics/{train,valid}/<class>/*.png — 25 × 25 gray pictures of four noisy shapes of
random size and place (300 + 100 per class) — trains `convlearn train pics --arch simple_cnn
--epochs 3` and the same network in PyTorch (conv3×3 1→32 pad 1, ReLU, max-pool 2, conv3×3 32→64
pad 1, ReLU, max-pool 2, fc 3136→128, ReLU, fc 128→4; pictures squashed to 28 × 28, normalised by
the training set's mean and deviation; Adam, one-cycle to 1e-2, batch 64, 3 epochs), once per
seed, and prints one JSON object with every run's validation accuracy.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

CLASSES = ["circle", "cross", "square", "triangle"]


def draw(kind, rng, side=25):
    yy, xx = np.mgrid[0:side, 0:side]
    r = rng.uniform(4, 9)
    cy, cx = rng.uniform(r + 1, side - r - 1, size=2)
    dy, dx = yy - cy, xx - cx
    if kind == "circle":
        ink = dx**2 + dy**2 <= r**2
    elif kind == "square":
        ink = (abs(dx) <= r * 0.8) & (abs(dy) <= r * 0.8)
    elif kind == "cross":
        ink = ((abs(dx) <= r / 4) & (abs(dy) <= r)) | ((abs(dy) <= r / 4) & (abs(dx) <= r))
    else:  # triangle, point up
        ink = (dy <= r * 0.8) & (dy >= -r) & (abs(dx) <= (dy + r) / 2)
    img = np.where(ink, rng.uniform(170, 250), rng.uniform(0, 60)) + rng.normal(0, 25, (side, side))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_pictures(root):
    rng = np.random.default_rng(17)
    for split, n in [("train", 300), ("valid", 100)]:
        for kind in CLASSES:
            d = root / split / kind
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(draw(kind, rng)).save(d / f"{i}.png")


def load(root, split):
    xs, ys = [], []
    for label, kind in enumerate(CLASSES):
        for p in sorted((root / split / kind).glob("*.png")):
            img = Image.open(p).convert("L").resize((28, 28), Image.BILINEAR)
            xs.append(np.asarray(img, dtype=np.float32) / 255.0)
            ys.append(label)
    return torch.tensor(np.stack(xs))[:, None], torch.tensor(ys)


class SimpleCnn(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.f1 = nn.Linear(64 * 7 * 7, 128)
        self.f2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))


def torch_run(root, seed, epochs=3, batch=64, lr=1e-2):
    torch.manual_seed(seed)
    (xt, yt), (xv, yv) = load(root, "train"), load(root, "valid")
    mean, std = xt.mean(), xt.std()
    xt, xv = (xt - mean) / std, (xv - mean) / std
    model = SimpleCnn(len(CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(xt) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    start = time.time()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt)).split(batch):
            opt.zero_grad()
            F.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
            sched.step()
    seconds = time.time() - start
    model.eval()
    with torch.no_grad():
        acc = (model(xv).argmax(1) == yv).float().mean().item()
    return acc, seconds


def main():
    binary, work = sys.argv[1], Path(sys.argv[2])
    seeds = int(sys.argv[sys.argv.index("--seeds") + 1]) if "--seeds" in sys.argv else 3
    torch.set_num_threads(2)
    work.mkdir(parents=True, exist_ok=True)
    root = work / "pics"
    if not root.exists():
        write_pictures(root)
    runs = {"convlearn": [], "pytorch": []}
    for seed in range(seeds):
        out = subprocess.run(
            [binary, "train", "pics", "--arch", "simple_cnn", "--epochs", "3", "--seed", str(seed),
             "--save", f"m{seed}.safetensors", "--json"],
            cwd=work, capture_output=True, text=True, check=True)
        v = json.loads(out.stdout)
        runs["convlearn"].append({"seed": seed, "valid_accuracy": v["valid_accuracy"],
                                  "seconds": v["seconds"]})
        acc, seconds = torch_run(root, seed)
        runs["pytorch"].append({"seed": seed, "valid_accuracy": acc, "seconds": seconds})
    summary = {k: float(np.mean([r["valid_accuracy"] for r in v])) for k, v in runs.items()}
    print(json.dumps({"torch": torch.__version__, "runs": runs, "mean_valid_accuracy": summary}))


if __name__ == "__main__":
    main()
