"""Figures and tables of the shipped networks for docs/sr_results.md.

    .venv/bin/python docs/make_figures.py

Writes docs/figures/montage.png (crops of bicubic / SRResNet-MSE / SRGAN-VGG54 / HR, as the paper's
Figure 2 compares them) and docs/sr_results.md (the shipped variants' scores, from their model
cards). Uses the shipped weights in sr_models/weights/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sr_models.datasets import find_dataset  # noqa: E402
from sr_models.methods import NETWORK_METHODS, get_upscaler  # noqa: E402

WEIGHTS = REPO / "sr_models" / "weights"
DATASETS = REPO.parent / "shared" / "datasets"
# (dataset, image, top, left, size) in HR pixels: textured regions where the methods differ most.
CROPS = [("Set14", "img_014", 120, 150, 120), ("BSD100", "img_023", 60, 200, 120), ("Set5", "img_003", 80, 60, 120)]
COLUMNS = [("bicubic", "bicubic"), ("srresnet-mse", "SRResNet-MSE"), ("srgan-vgg54", "SRGAN-VGG54"), ("hr", "HR")]


def shipped_columns() -> list[tuple[str, str]]:
    """The montage's columns, less networks whose weights are not shipped (yet)."""
    return [(m, label) for m, label in COLUMNS
            if m not in NETWORK_METHODS or (WEIGHTS / f"{m}.safetensors").is_file()]


def montage(path: Path) -> Path:
    columns = shipped_columns()
    upscalers = {m: get_upscaler(m, weights_dir=WEIGHTS, device="cpu") for m, _ in columns if m != "hr"}
    fig, axes = plt.subplots(len(CROPS), len(columns), figsize=(3.0 * len(columns), 3.0 * len(CROPS)))
    for row, (dataset, image, top, left, size) in enumerate(CROPS):
        hr, lr = find_dataset(dataset, DATASETS).pair(image).load()
        for col, (method, label) in enumerate(columns):
            sr = hr if method == "hr" else upscalers[method](lr)
            crop = sr[:, top : top + size, left : left + size].permute(1, 2, 0).numpy()
            ax = axes[row, col]
            ax.imshow(crop.squeeze(), cmap="gray" if crop.shape[2] == 1 else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(label)
            if col == 0:
                ax.set_ylabel(f"{dataset} {image}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def results_table(path: Path) -> Path:
    cards = {p.stem: json.loads(p.read_text()) for p in sorted(WEIGHTS.glob("*.json"))}
    lines = ["# Shipped networks: scores", "",
             "From the model cards in `sr_models/weights/` (written by `manage.py ship_weights`). PSNR/SSIM on MATLAB Y,",
             "4-pixel border; LPIPS-VGG v0.1 (lower is closer to HR); HF ratio = mean squared Laplacian of SR over HR on",
             "Y (1.0 = as much high-frequency energy as the original; blur gives < 1).", "",
             "| variant | Set5 PSNR / SSIM | Set14 PSNR / SSIM | BSD100 PSNR / SSIM | BSD100 LPIPS | BSD100 HF ratio (Laplacian / spectral) |",
             "|---|---|---|---|---:|---|"]
    for variant, card in cards.items():
        e = card["evaluation"]
        cell = lambda s: f"{e[s]['psnr_y']:.2f} / {e[s]['ssim_y']:.4f}"  # noqa: E731
        b = e["BSD100"]
        lines.append(f"| {variant} | {cell('Set5')} | {cell('Set14')} | {cell('BSD100')} | {b['lpips']:.4f} | "
                     f"{b['hf_laplacian_ratio']:.3f} / {b['hf_spectral_ratio']:.3f} |")
    shown = ", ".join(label for _, label in shipped_columns())
    lines += ["", f"![{shown} crops](figures/montage.png)", ""]
    path.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    print(montage(REPO / "docs" / "figures" / "montage.png"))
    print(results_table(REPO / "docs" / "sr_results.md"))
