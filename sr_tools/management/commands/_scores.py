"""The per-image table that evaluate_sr and score_images print."""

from __future__ import annotations

from sr_models.evaluation import ImageScore, mean_scores

_HEADINGS = {"psnr_y": ("PSNR-Y", 8), "ssim_y": ("SSIM-Y", 7), "lpips": ("LPIPS", 7), "dists": ("DISTS", 7),
             "niqe": ("NIQE", 7)}


def write_table(stdout, scores: list[ImageScore], columns: list[str] | None = None) -> ImageScore:
    """Print one row per image and a mean row; return the mean."""
    mean = mean_scores(scores)
    columns = columns if columns is not None else ["psnr_y", "ssim_y", *mean.extra]
    width = max(len(s.image) for s in scores + [mean])
    stdout.write(f"{'image':<{width}}" + "".join(f"  {_HEADINGS[c][0]:>{_HEADINGS[c][1]}}" for c in columns))
    for s in scores + [mean]:
        stdout.write(f"{s.image:<{width}}" + "".join(f"  {s.value(c):{_HEADINGS[c][1]}.4f}" for c in columns))
    return mean
