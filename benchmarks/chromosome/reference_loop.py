"""The bar to clear: a hand-written timm ResNet-18 training loop on Pki-3 (64 px canvas, 8 epochs).

It uses biorep only to load the same decoded images and the same case-level split as biorep's runs,
so the comparison is about training, not data. Everything else is the plain PyTorch loop a lab would
write: AdamW, cosine schedule, random flips, cross-entropy, batch 128, fp32 on the CPU.

    python benchmarks/chromosome/reference_loop.py --epochs 8 --out benchmarks/chromosome/reference.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F

from biorep.data import DataConfig, IntensityScaler, load_dataset, split_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="chromosome-pki3")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    cfg = DataConfig(dataset=args.dataset, geometry={"size": args.size})
    ds = load_dataset(cfg)
    splits = split_dataset(ds, cfg.split)
    scaler = IntensityScaler.fit(ds, splits.train, cfg.intensity)
    train_idx = np.concatenate([splits.train, splits.val])  # the reference trains on train+val
    x_train = scaler(torch.from_numpy(np.ascontiguousarray(ds.images[np.sort(train_idx)])))
    y_train = torch.from_numpy(ds.targets[np.sort(train_idx)])
    x_test = scaler(torch.from_numpy(np.ascontiguousarray(ds.images[splits.test])))
    y_test = torch.from_numpy(ds.targets[splits.test])

    model = timm.create_model("resnet18", pretrained=False, in_chans=ds.channels, num_classes=len(ds.classes))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps = args.epochs * ((len(x_train) + args.batch_size - 1) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train))
        total = 0.0
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i : i + args.batch_size]
            x, y = x_train[idx], y_train[idx]
            flip = torch.rand(len(x)) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / len(perm):.4f} ({time.perf_counter() - start:.0f} s)")
    train_s = time.perf_counter() - start

    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(x_test[i : i + 512]).argmax(1) for i in range(0, len(x_test), 512)])
    acc = (pred == y_test).float().mean().item()
    result = {
        "what": "hand-written timm resnet18 loop",
        "epochs": args.epochs,
        "size": args.size,
        "train_images": len(x_train),
        "test_images": len(x_test),
        "test_accuracy": acc,
        "train_time_s": train_s,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
