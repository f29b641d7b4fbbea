"""Training-curve plot (matplotlib, headless): losses and validation PSNR against steps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .files import atomic_write

__all__ = ["plot_training_curves"]


def plot_training_curves(losses_csv: Path, validation_csv: Path, out_png: Path, title: str = "") -> Path | None:
    """Write ``out_png`` with the loss curves (smoothed over 50 steps) and validation PSNR-Y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not Path(losses_csv).exists():
        return None
    losses = pd.read_csv(losses_csv)
    if losses.empty:
        return None
    val = pd.read_csv(validation_csv) if Path(validation_csv).exists() else pd.DataFrame()
    gan = losses["d_loss"].abs().sum() > 0
    n_axes = 2 + int(gan)
    fig, axes = plt.subplots(1, n_axes, figsize=(5 * n_axes, 3.6), constrained_layout=True)
    window = max(1, min(50, len(losses) // 10))
    ax = axes[0]
    ax.plot(losses["step"], losses["content"].rolling(window, min_periods=1).mean(), label="content")
    ax.plot(losses["step"], losses["g_total"].rolling(window, min_periods=1).mean(), label="generator total", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(f"{title} losses (mean of {window} steps)")
    ax.legend()
    ax = axes[1]
    if not val.empty:
        ax.plot(val["step"], val["psnr_y"], marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("PSNR-Y (dB)")
    ax.set_title("validation PSNR-Y")
    ax.grid(alpha=0.3)
    if gan:
        ax = axes[2]
        for col in ("d_real", "d_fake"):
            ax.plot(losses["step"], losses[col].rolling(window, min_periods=1).mean(), label=f"mean {col}")
        ax.set_ylim(0, 1)
        ax.set_xlabel("step")
        ax.set_title("discriminator outputs")
        ax.legend()
    with atomic_write(out_png) as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)
    return Path(out_png)
