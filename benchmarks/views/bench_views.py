"""Throughput of biorep's batched view pipelines vs lightly's per-image transforms, side by side.

Run from the repository root (takes about a minute on 2 cores):

    .venv/bin/python benchmarks/views/bench_views.py            # writes benchmarks/views/RESULTS.md
    .venv/bin/python benchmarks/views/bench_views.py --quick    # fewer images, no results file

Both pipelines start from the same in-memory 64×64 uint8 images and end with float tensors
[B, C, 64, 64] per view:

- lightly: ``SimCLRTransform`` (or ``MultiViewTransform`` of torchvision per-image transforms for
  Study B's multi-crop) applied per PIL image in a ``torch.utils.data.DataLoader`` with 2 workers,
  batch 256 (the usual way of feeding lightly models);
- biorep: one batched ``ViewGenerator`` call per batch of 256 in the main process with 2 torch
  threads (uint8 → float conversion included).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from biorep.rundir import atomic_write_text

N_IMAGES = 2048
BATCH = 256
SIZE = 64


def make_images(n: int, c: int, seed: int = 0) -> np.ndarray:
    """Smooth random blobs on a dark background, uint8 [N, H, W, C]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    out = np.zeros((n, SIZE, SIZE, c), np.float32)
    for _ in range(6):
        cx, cy = rng.uniform(8, 56, (2, n, 1, 1))
        r = rng.uniform(3, 10, (n, 1, 1))
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r**2))
        out += blob[..., None] * rng.uniform(0.3, 1.0, (n, 1, 1, c))
    out += rng.normal(0, 0.03, out.shape)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


class PILDataset(torch.utils.data.Dataset):
    """Pre-decoded PIL images (no file decoding, to be generous to the per-image pipeline)."""

    def __init__(self, images: np.ndarray, transform) -> None:
        mode = "L" if images.shape[-1] == 1 else "RGB"
        self.images = [Image.fromarray(im.squeeze(-1) if mode == "L" else im, mode) for im in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i])


def lightly_simclr(c: int):
    from lightly.transforms import SimCLRTransform

    return SimCLRTransform(
        input_size=SIZE,
        cj_prob=0.8,
        cj_bright=0.8,
        cj_contrast=0.8,
        cj_sat=0.0,
        cj_hue=0.0,
        cj_strength=0.5,
        min_scale=0.08,
        random_gray_scale=0.0,
        gaussian_blur=0.5,
        sigmas=(0.1, 2.0),
        hf_prob=0.5,
        normalize=None,
    )


def lightly_study_b_multi(c: int):
    import torchvision.transforms as T
    from lightly.transforms.multi_view_transform import MultiViewTransform

    def view(scale: tuple[float, float]) -> T.Compose:
        return T.Compose(
            [
                T.RandomResizedCrop(SIZE, scale=scale),
                T.RandomHorizontalFlip(0.5),
                T.RandomApply([T.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.2),
                T.ToTensor(),
            ]
        )

    return MultiViewTransform([view((1.0, 1.0))] + [view((0.5, 0.75))] * 2 + [view((0.25, 0.5))] * 2)


def time_lightly(images: np.ndarray, transform, epochs: int) -> float:
    ds = PILDataset(images, transform)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=BATCH, num_workers=2, persistent_workers=True, shuffle=True, drop_last=False
    )
    for _ in loader:  # warm-up epoch: worker start-up not counted
        pass
    start = time.perf_counter()
    n = 0
    for _ in range(epochs):
        for views in loader:
            n += views[0].shape[0]
    elapsed = time.perf_counter() - start
    del loader
    return n / elapsed


class BatchViews(torch.utils.data.Dataset):
    """Item i = the views of batch i (one batched biorep call), for a DataLoader with workers."""

    def __init__(self, data: torch.Tensor, views, n_views: int) -> None:
        self.data, self.views, self.n_views = data, views, n_views

    def __len__(self) -> int:
        return -(-len(self.data) // BATCH)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.views(self.data[i * BATCH : (i + 1) * BATCH].float().div_(255), self.n_views)


def time_biorep(images: np.ndarray, views_cfg: dict, n_views: int, epochs: int, workers: int) -> float:
    """images/s of biorep's views: in the main process (1 thread) or in ``workers`` DataLoader workers."""
    from biorep.views import ViewsConfig, build_views

    views = build_views(ViewsConfig(**views_cfg), SIZE, seed=0)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # uint8 [N, C, H, W]
    if workers == 0:
        torch.set_num_threads(1)
        batches: object = BatchViews(data, views, n_views)
    else:
        batches = torch.utils.data.DataLoader(
            BatchViews(data, views, n_views), batch_size=None, num_workers=workers, persistent_workers=True
        )
    for _ in batches:  # warm-up epoch
        pass
    start = time.perf_counter()
    n = 0
    for _ in range(epochs):
        for out in batches:
            n += out[0].shape[0]
    return n / (time.perf_counter() - start)


CASES = [
    (
        "SimCLR-like, 2 views",
        lightly_simclr,
        {"augment": "simclr", "crops": {"strategy": "random_resized", "scale": [0.08, 1.0]}},
        2,
    ),
    (
        "Study B random × multi-crop, 5 views",
        lightly_study_b_multi,
        {"augment": "random", "crops": "multi"},
        1,
    ),
]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}; {len(os.sched_getaffinity(0))} usable cores (shared); Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, print only")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    n = 512 if args.quick else N_IMAGES
    epochs = 1 if args.quick else 2
    import lightly

    rows = []
    t0 = time.perf_counter()
    for channels in (1, 3):
        images = make_images(n, channels)
        for name, lightly_factory, cfg, n_views in CASES:
            ips_lightly = time_lightly(images, lightly_factory(channels), epochs)
            ips_one = time_biorep(images, cfg, n_views, epochs, workers=0)
            ips_two = time_biorep(images, cfg, n_views, epochs, workers=2)
            rows.append((name, channels, ips_lightly, ips_one, ips_two))
            print(
                f"{name:38s} C={channels}: lightly(2 workers) {ips_lightly:6.0f} img/s | biorep 1 thread "
                f"{ips_one:6.0f} (×{ips_one / ips_lightly:.1f}) | biorep 2 workers {ips_two:6.0f} "
                f"(×{ips_two / ips_lightly:.1f})",
                flush=True,
            )
    total = time.perf_counter() - t0
    if args.quick:
        return
    lines = [
        "# Views throughput: biorep (batched, per-sample parameters) vs lightly (per image, DataLoader)",
        "",
        f"Command: `.venv/bin/python benchmarks/views/bench_views.py` (whole run {total:.0f} s)  ",
        f"Machine: {machine()}; lightly {lightly.__version__}  ",
        f"Data: {n} synthetic {SIZE}×{SIZE} uint8 images in memory, batch {BATCH}, {epochs} timed "
        "epochs after one warm-up epoch; images/s = source images per second (each yields all its views).",
        "",
        "| pipeline | channels | lightly, 2 workers | biorep, main process, 1 thread | biorep, 2 workers |",
        "|---|---|---|---|---|",
    ]
    for name, c, a, one, two in rows:
        lines.append(
            f"| {name} | {c} | {a:,.0f} img/s | {one:,.0f} img/s (×{one / a:.1f}) "
            f"| {two:,.0f} img/s (×{two / a:.1f}) |"
        )
    lines += [
        "",
        "What each pipeline does (per view, independently per image):",
        "",
        "- SimCLR-like: lightly `SimCLRTransform(input_size=64, min_scale=0.08, cj_prob=0.8, "
        "cj_strength=0.5, cj_bright=0.8, cj_contrast=0.8, cj_sat=0, cj_hue=0, random_gray_scale=0, "
        "gaussian_blur=0.5, sigmas=(0.1, 2), hf_prob=0.5, normalize=None)`: random resized crop "
        "(scale 0.08–1, ratio 3/4–4/3) → hflip → colour jitter (brightness, contrast ±0.4) p=0.8 → "
        "PIL Gaussian blur p=0.5 → ToTensor. biorep `augment: simclr`, "
        "`crops: {strategy: random_resized, scale: [0.08, 1]}`: random resized crop via `roi_align` → "
        "hflip → brightness ×[0.6, 1.4] p=0.8 → contrast ×[0.6, 1.4] p=0.8 → Gaussian blur k=7 "
        "σ∈[0.1, 2] p=0.5. Saturation, hue and random grayscale are off in lightly because they do "
        "not apply to 1-channel (or non-RGB fluorescence) images; lightly's PIL blur picks its own "
        "kernel extent from σ.",
        "- Study B random × multi-crop: lightly `MultiViewTransform` of 5 torchvision per-image "
        "pipelines (`RandomResizedCrop(64, scale)` with scales 1 / 0.5–0.75 ×2 / 0.25–0.5 ×2, "
        "`RandomHorizontalFlip(0.5)`, `RandomApply([GaussianBlur(3, (0.1, 2))], p=0.2)`, `ToTensor`) "
        "— the study's own way; biorep `augment: random`, `crops: multi`.",
        "- lightly runs per image in 2 DataLoader worker processes (1 torch thread each, batch 256). "
        "biorep runs one batched call per 256 images either in the main process with 1 torch thread "
        "(one core: how views run inside a CPU training step) or in 2 DataLoader workers "
        "(`batch_size=None`, one item = one batch's views: the same parallelism as lightly). The 2 "
        "cores are shared with other work, so absolute numbers vary between runs; the pipelines of "
        "a row ran back to back.",
        "- On a GPU the same ViewGenerator call runs on the batch where it lies (no worker "
        "processes); not measured here (no GPU on this machine).",
        "",
    ]
    out = Path(args.out)
    atomic_write_text(out, "\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
