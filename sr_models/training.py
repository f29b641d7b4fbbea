"""Training SRResNet and SRGAN variants: data, steps, checkpoints with exact resume, logs.

Design choices that matter for reproducibility:

* The batch of step ``k`` is a pure function of ``(seed, k)``: a resumed run draws exactly the batches
  the uninterrupted run would have drawn, with no RNG state to save.
* LR crops are made on the fly from the HR crops with the project's MATLAB-faithful bicubic
  (:func:`sr_models.resize.imresize`, uint8 in, uint8 out), as the benchmark LR files are made.
* A checkpoint holds everything the next step depends on (weights, BN statistics, both optimizers'
  moments, the step) and is written atomically; the loss log is cut back to the checkpoint's step on
  resume, so a run killed at any moment resumes to the same numbers.

References
----------
.. [1] C. Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
       Network", CVPR 2017.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .datasets import find_dataset, training_image_paths
from .files import atomic_write
from .images import read_image
from .inference import _load_state, pick_device, save_generator, sha256_file, upscale
from .losses import (
    GAN_LOSSES,
    VGGContentLoss,
    adversarial_loss,
    discriminator_loss,
    grid_loss,
    low_frequency_loss,
    mse_loss,
    relativistic_losses,
    tv_loss,
)
from .metrics import psnr_ssim_y
from .networks import Discriminator, SRResNet
from .resize import imresize
from .variants import PAPER_VGG_RESCALE, LossWeights, Variant, get_variant, learning_rate
from .vgg import BACKBONES, layer_spec

__all__ = ["TrainConfig", "CropSampler", "Trainer", "train", "LOSS_COLUMNS"]

LOSS_COLUMNS = ["step", "lr", "g_total", "content", "adversarial", "tv", "low_frequency", "grid", "d_loss", "d_real", "d_fake",
                "seconds"]


#: The settings that only a network with a discriminator has, at the paper's values: a run that sets
#: another value leaves the paper (the model card says so) and needs a GAN variant.
PAPER_DISCRIMINATOR_SETTINGS = {"gan_loss": "standard", "discriminator_lr_scale": 1.0, "discriminator_warmup_steps": 0}


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint."""

    variant: str
    out_dir: str
    datasets_root: str
    steps: int = 1000
    batch_size: int = 16
    crop_size: int = 96  # HR crop edge; LR crops are crop_size // scale
    scale: int = 4
    lr: float | None = None  # default: the variant's (1e-4, the paper's)
    lr_decay_at: float | None = None  # fraction of steps at which lr drops 10x; None: the paper's
    adam_betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    train_subsets: tuple[str, ...] = ("T91", "BSD200")
    max_train_images: int | None = None  # tests train on a few images
    backbone: str = "vgg16"
    vgg_weights: str | None = None
    init_weights: str | None = None  # generator to start from (SRGAN: a trained SRResNet-MSE)
    # Loss weights; None: the variant's recipe (sr_models.variants), which says where it leaves the paper.
    adversarial_weight: float | None = None
    low_frequency_weight: float | None = None
    vgg_rescale: float | None = None
    grid_weight: float | None = None  # sr_models.losses.grid_loss; None: 0, the paper's (no such term)
    # VGG layers of the content loss (keys of sr_models.vgg.BACKBONES), the variant's own the deepest;
    # None: the variant's one layer, the paper's. Several: the mean of their losses (ESRGAN's kind).
    content_layers: tuple[str, ...] | None = None
    # "standard": the paper's -log D(G(x)); "relativistic": the relativistic average GAN (not the paper's).
    gan_loss: str = "standard"
    # Discriminator lr as a multiple of the generator's at every step (1: the paper's, one lr for both).
    discriminator_lr_scale: float = 1.0
    # The first N steps train D alone (G frozen), so G's first adversarial gradients come from a D that
    # already tells SR from HR, not from random weights (BasicSR's net_d_init_iters; 0: the paper's).
    discriminator_warmup_steps: int = 0
    checkpoint_every: int = 500
    # Also keep the generator every N steps (snapshots/g_<step>.safetensors), so a run can be scored
    # against steps (benchmarks/gan_checkpoints.py); last.pt alone is overwritten. 0: keep none.
    keep_every: int = 0
    validate_every: int = 1000
    validation_set: str | None = "Set5"
    device: str = "auto"
    threads: int | None = None
    precision: str = "auto"  # auto: bf16 autocast on CUDA and on CPUs with AMX-BF16, else fp32

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        data["adam_betas"] = tuple(data["adam_betas"])
        data["train_subsets"] = tuple(data["train_subsets"])
        if data.get("content_layers") is not None:
            data["content_layers"] = tuple(data["content_layers"])
        return cls(**data)


class CropSampler:
    """Random HR crops (with the 8 flips/rotations) and their MATLAB-bicubic LR, from images in memory.

    Images smaller than the crop are skipped (T91 has one 78-pixel-wide image).
    """

    def __init__(self, paths: list[Path], crop_size: int, scale: int, seed: int):
        if crop_size % scale:
            raise ValueError(f"crop_size {crop_size} must be a multiple of scale {scale}")
        self.crop_size, self.scale, self.seed = crop_size, scale, seed
        self.images: list[torch.Tensor] = []
        self.skipped: list[Path] = []
        for path in paths:
            image = read_image(path)
            if image.shape[0] == 1:
                image = image.expand(3, -1, -1).contiguous()
            if min(image.shape[1:]) < crop_size:
                self.skipped.append(path)
                continue
            self.images.append(image)
        if not self.images:
            raise ValueError(f"no training image is at least {crop_size}x{crop_size}")

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of ``step``: (LR in [0, 1], HR in [-1, 1]), float32, (N, 3, h, w)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        c = self.crop_size
        crops = []
        picks = torch.randint(len(self.images), (batch_size,), generator=g).tolist()
        for idx in picks:
            image = self.images[idx]
            top = int(torch.randint(image.shape[1] - c + 1, (1,), generator=g))
            left = int(torch.randint(image.shape[2] - c + 1, (1,), generator=g))
            crop = image[:, top : top + c, left : left + c]
            flip = int(torch.randint(2, (1,), generator=g))
            rot = int(torch.randint(4, (1,), generator=g))
            if flip:
                crop = crop.flip(-1)
            crops.append(torch.rot90(crop, rot, dims=(-2, -1)))
        hr = torch.stack(crops)
        lr = imresize(hr, 1.0 / self.scale, method="bicubic")
        return lr.float() / 255.0, hr.float() / 127.5 - 1.0


def cpu_has_bf16_matrix_units() -> bool:
    """AMX-BF16 (Intel Sapphire Rapids and later): oneDNN runs bf16 convolutions there about 2.6x
    faster than fp32 (BENCHMARKS.md); without it bf16 on CPU is emulated and slower."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def uses_bf16_autocast(precision: str, device: torch.device) -> bool:
    """Whether training runs under bf16 autocast. Weights, optimizer state and validation stay fp32."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', not {precision!r}")
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16_matrix_units())
    return precision == "bf16"


def resolve_loss_weights(variant: Variant, backbone: str, adversarial: float | None = None,
                         low_frequency: float | None = None, vgg_rescale: float | None = None,
                         grid: float | None = None) -> LossWeights:
    """The weights a run of ``variant`` trains with: its recipe, the backbone layer's VGG rescale, and
    the run's overrides."""
    rescale = BACKBONES[backbone][variant.content].rescale if variant.uses_vgg else PAPER_VGG_RESCALE
    return variant.loss_weights(rescale, adversarial, low_frequency, vgg_rescale, grid)


def check_content_layers(variant: Variant, backbone: str, layers: tuple[str, ...] | None) -> None:
    """A run's content layers: known to the backbone, with the variant's own layer the deepest, so that
    ``--vgg-rescale`` and the recipe's rescale keep meaning that layer's; None (the paper's) passes."""
    if layers is None:
        return
    if not variant.uses_vgg:
        raise ValueError(f"{variant.name} has a pixel content loss: content layers {', '.join(layers)} do not apply")
    depth = {name: layer_spec(backbone, name).n_modules for name in layers}
    if variant.content not in depth or max(depth, key=depth.get) != variant.content:
        raise ValueError(f"content layers {', '.join(layers)}: {variant.name}'s own layer {variant.content} "
                         "must be among them and the deepest")


class Trainer:
    """One training run of one variant; ``run()`` trains until ``config.steps`` (resuming if possible)."""

    def __init__(self, config: TrainConfig, log: Callable[[str], None] = print):
        self.config = config
        self.variant: Variant = get_variant(config.variant)
        if config.gan_loss not in GAN_LOSSES:
            raise ValueError(f"gan_loss {config.gan_loss!r} is not one of {', '.join(GAN_LOSSES)}")
        if not config.discriminator_lr_scale > 0:
            raise ValueError(f"discriminator_lr_scale must be positive, not {config.discriminator_lr_scale!r}")
        if not 0 <= config.discriminator_warmup_steps < config.steps:
            raise ValueError(f"discriminator_warmup_steps must be in [0, steps={config.steps}), "
                             f"not {config.discriminator_warmup_steps!r}")
        if not self.variant.is_gan:
            for name, paper_value in PAPER_DISCRIMINATOR_SETTINGS.items():
                if getattr(config, name) != paper_value:
                    raise ValueError(f"{config.variant} has no discriminator: {name} {getattr(config, name)!r} "
                                     "does not apply")
        check_content_layers(self.variant, config.backbone, config.content_layers)
        self.loss_weights = resolve_loss_weights(self.variant, config.backbone, config.adversarial_weight,
                                                 config.low_frequency_weight, config.vgg_rescale, config.grid_weight)
        self.log = log
        self.out = Path(config.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = pick_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.autocast_bf16 = uses_bf16_autocast(config.precision, self.device)
        self.generator = SRResNet(scale=config.scale).to(self.device)
        self.discriminator = Discriminator(input_size=config.crop_size).to(self.device) if self.variant.is_gan else None
        self.content_vgg = (
            VGGContentLoss(config.content_layers or self.variant.content, config.backbone, config.vgg_weights,
                           rescale=self.loss_weights.vgg_rescale).to(self.device)
            if self.variant.uses_vgg
            else None
        )
        if self.device.type == "cpu":
            # oneDNN's NHWC convolutions are about 25% faster than NCHW on CPU for this network.
            self.generator.to(memory_format=torch.channels_last)
            if self.discriminator is not None:
                self.discriminator.to(memory_format=torch.channels_last)
        lr0 = self._lr(0)
        self.g_opt = torch.optim.Adam(self.generator.parameters(), lr=lr0, betas=config.adam_betas)
        self.d_opt = (
            torch.optim.Adam(self.discriminator.parameters(), lr=lr0, betas=config.adam_betas)
            if self.discriminator is not None
            else None
        )
        self.step = 0  # number of completed steps
        self.init_sha256: str | None = None
        self.sampler: CropSampler | None = None

    # -- state -------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "last.pt"

    def _lr(self, step: int) -> float:
        c = self.config
        return learning_rate(self.variant, step, c.steps, c.lr, c.lr_decay_at)

    def state(self) -> dict:
        return {
            "format": "sr_models.training/1",
            "config": self.config.to_json(),
            "step": self.step,
            "arch": {"n_blocks": len(self.generator.blocks), "channels": 64, "scale": self.config.scale},
            "generator": self.generator.state_dict(),
            "g_opt": self.g_opt.state_dict(),
            "discriminator": self.discriminator.state_dict() if self.discriminator else None,
            "d_opt": self.d_opt.state_dict() if self.d_opt else None,
        }

    def save_checkpoint(self) -> Path:
        with atomic_write(self.checkpoint_path) as fh:
            torch.save(self.state(), fh)
        return self.checkpoint_path

    def snapshot_path(self, step: int) -> Path:
        return self.out / "snapshots" / f"g_{step:06d}.safetensors"

    def save_snapshot(self) -> Path:
        """The generator as it is now, beside the run (``keep_every``), loadable by ``load_generator``."""
        return save_generator(self.generator, self.snapshot_path(self.step), self._generator_metadata())

    def load_checkpoint(self, path: Path) -> None:
        ckpt = torch.load(path, map_location=self.device, weights_only=True)
        saved = ckpt.get("config", {})
        if saved.get("variant") != self.config.variant:
            raise ValueError(f"{path} is a checkpoint of {saved.get('variant')!r}, not {self.config.variant!r}")
        step = int(ckpt["step"])
        if self.config.steps < step:
            raise ValueError(f"{path} is at step {step}, past the {self.config.steps} steps asked for")
        changed = _changed_settings(saved, self.config.to_json())
        if changed:
            raise ValueError(
                f"{path} was trained with other settings ({'; '.join(changed)}): resuming would mix two "
                "runs. Pass the same settings, or train into a new --out folder."
            )
        if saved.get("precision", "fp32") != self.config.precision:
            self.log(f"note: {path} was trained so far with precision {saved.get('precision', 'fp32')!r}, "
                     f"now {self.config.precision!r}")
        if saved.get("steps") != self.config.steps:
            self.log(f"note: {path} was started for {saved.get('steps')} steps, now {self.config.steps}: "
                     "the learning-rate schedule, scaled to the steps, changes from here on")
        self.generator.load_state_dict(ckpt["generator"])
        self.g_opt.load_state_dict(ckpt["g_opt"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(ckpt["discriminator"])
            self.d_opt.load_state_dict(ckpt["d_opt"])
        self.step = step

    def initialise_generator(self, path: str | Path) -> None:
        state, _ = _load_state(Path(path))
        self.generator.load_state_dict(state)
        # The file at that path may be replaced later (a newly shipped SRResNet-MSE): keep its hash.
        self.init_sha256 = sha256_file(path)

    def _generator_metadata(self) -> dict[str, str]:
        c = self.config
        return {"variant": c.variant, "steps": str(self.step),
                "backbone": c.backbone if self.variant.uses_vgg else "none"}

    def _record_session(self) -> None:
        """Append what this process trains on to ``sessions.jsonl``: a run resumed on another machine
        (or moved from a CPU to a GPU) keeps the provenance of every stretch for its model card."""
        record = {
            "from_step": self.step,
            "device": self.device.type,
            "device_name": _device_name(self.device),
            "precision": "bf16-autocast" if self.autocast_bf16 else "fp32",
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            # The schedule this stretch ran under: steps may grow or shrink on resume, which moves a
            # fractional lr drop, so the card must say where each stretch's rate actually was.
            "steps": self.config.steps,
            "lr_at_start": self._lr(self.step),
        }
        if self.step == 0 and self.init_sha256:
            record["init_sha256"] = self.init_sha256
        with open(self.out / "sessions.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        self.log(f"training on {record['device_name']} in {record['precision']} from step {self.step}")

    # -- one step ------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16)

    def train_step(self, lr_batch: torch.Tensor, hr_batch: torch.Tensor) -> dict[str, float]:
        """One generator update (and, for SRGAN, the discriminator update before it); during the
        discriminator warm-up, the discriminator update alone."""
        warming_up = self.step < self.config.discriminator_warmup_steps
        lr_rate = self._lr(self.step)
        for opt, rate in ((self.g_opt, lr_rate), (self.d_opt, lr_rate * self.config.discriminator_lr_scale)):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = rate
        memory = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        lr_batch = lr_batch.to(self.device).contiguous(memory_format=memory)
        hr_batch = hr_batch.to(self.device).contiguous(memory_format=memory)
        # Frozen in the warm-up: eval mode keeps its batch-norm statistics as they are too.
        self.generator.train(not warming_up)
        row = {"lr": lr_rate, "adversarial": 0.0, "tv": 0.0, "low_frequency": 0.0, "grid": 0.0, "d_loss": 0.0,
               "d_real": 0.0, "d_fake": 0.0}

        with self._autocast(), torch.set_grad_enabled(not warming_up):
            sr = self.generator(lr_batch)

        if self.discriminator is not None:
            # D step: one update per G update (k = 1, as in the paper).
            self.discriminator.train()
            with self._autocast():
                real_logits = self.discriminator(hr_batch)
                fake_logits = self.discriminator(sr.detach())
                if self.config.gan_loss == "relativistic":
                    d_loss, _ = relativistic_losses(real_logits, fake_logits)
                else:
                    d_loss = discriminator_loss(real_logits, fake_logits)
            self.d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_opt.step()
            row.update(
                d_loss=d_loss.item(),
                d_real=torch.sigmoid(real_logits.float()).mean().item(),
                d_fake=torch.sigmoid(fake_logits.float()).mean().item(),
            )
        if warming_up:
            row.update(g_total=math.nan, content=math.nan)  # no G loss: a gap in the curves
        else:
            row.update(self._generator_update(sr, hr_batch))
        self.step += 1
        row["step"] = self.step
        checked = ("d_loss",) if warming_up else ("g_total", "content", "d_loss")
        if not all(math.isfinite(row[k]) for k in checked):
            raise FloatingPointError(f"non-finite loss at step {self.step}: {row}")
        return row

    def _generator_update(self, sr: torch.Tensor, hr_batch: torch.Tensor) -> dict[str, float]:
        """G's loss on its output ``sr`` for the batch and one Adam step; the loss terms, for the log."""
        w = self.loss_weights
        row = {}
        with self._autocast():
            content = self.content_vgg(sr, hr_batch) if self.content_vgg is not None else mse_loss(sr, hr_batch)
            total = content
            if self.discriminator is not None:
                # D is frozen for G's step: its gradients would be discarded anyway.
                self.discriminator.requires_grad_(False)
                if self.config.gan_loss == "relativistic":
                    # The updated D's view of HR enters G's loss as a constant (ESRGAN's form).
                    with torch.no_grad():
                        real_now = self.discriminator(hr_batch)
                    _, adv = relativistic_losses(real_now, self.discriminator(sr))
                else:
                    adv = adversarial_loss(self.discriminator(sr))
                self.discriminator.requires_grad_(True)
                total = total + w.adversarial * adv
                row["adversarial"] = adv.item()
            if w.tv:
                tv = tv_loss(sr)
                total = total + w.tv * tv
                row["tv"] = tv.item()
            if w.low_frequency:
                lf = low_frequency_loss(sr, hr_batch, self.config.scale)
                total = total + w.low_frequency * lf
                row["low_frequency"] = lf.item()
            if w.grid:
                grid = grid_loss(sr, hr_batch, self.config.scale)
                total = total + w.grid * grid
                row["grid"] = grid.item()
        self.g_opt.zero_grad(set_to_none=True)
        total.backward()
        self.g_opt.step()
        row.update(g_total=total.item(), content=content.item())
        return row

    # -- validation ------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean PSNR-Y/SSIM-Y of the generator on the validation set's LR files (for monitoring only:
        the shipped checkpoint is the last one, never chosen on a test set)."""
        dataset = find_dataset(self.config.validation_set, self.config.datasets_root, self.config.scale)
        self.generator.eval()
        psnrs, ssims = [], []
        for pair in dataset:
            hr, lr = pair.load()
            sr = upscale(self.generator, lr).cpu()
            p, s = psnr_ssim_y(sr, hr, self.config.scale)
            psnrs.append(float(p))
            ssims.append(float(s))
        self.generator.train()
        return {"step": self.step, "psnr_y": sum(psnrs) / len(psnrs), "ssim_y": sum(ssims) / len(ssims)}

    # -- logs --------------------------------------------------------------------------------------
    def _open_log(self, name: str, columns: list[str]) -> "csv.DictWriter":
        """Open a CSV log for appending, first dropping rows after the checkpoint's step.

        A kill can leave rows after the checkpoint and a half-written last row; only complete rows
        up to the checkpoint's step are kept, so the resumed log has each step exactly once.
        """
        path = self.out / name
        rows = []
        if path.exists():
            with open(path, newline="") as fh:
                for r in csv.DictReader(fh):
                    if None in r.values() or None in r or int(r["step"]) > self.step:
                        break
                    rows.append(r)
        fh = open(path, "w", newline="")
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        self._log_files.append(fh)
        return writer

    def plot_curves(self) -> Path | None:
        from .plots import plot_training_curves

        return plot_training_curves(self.out / "losses.csv", self.out / "validation.csv", self.out / "curves.png",
                                    title=self.config.variant)

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, progress: bool = True, until: int | None = None) -> dict:
        """Train to ``config.steps`` (or stop early at step ``until``); resumes from ``out_dir/last.pt``.

        Stopping at ``until`` leaves the run as a kill after that step's checkpoint would, so the
        next ``run()`` continues the same schedule.
        """
        c = self.config
        until = c.steps if until is None else min(until, c.steps)
        if self.checkpoint_path.exists():
            self.load_checkpoint(self.checkpoint_path)
            self.log(f"resuming {c.variant} at step {self.step} from {self.checkpoint_path}")
        elif c.init_weights:
            self.initialise_generator(c.init_weights)
            self.log(f"initialised the generator from {c.init_weights}")
        (self.out / "config.json").write_text(json.dumps(c.to_json(), indent=2))
        self._record_session()
        if self.sampler is None:
            paths = training_image_paths(c.datasets_root, c.train_subsets)
            if c.max_train_images:
                paths = paths[: c.max_train_images]
            self.sampler = CropSampler(paths, c.crop_size, c.scale, c.seed)
        self._log_files: list = []
        losses = self._open_log("losses.csv", LOSS_COLUMNS)
        validation = self._open_log("validation.csv", ["step", "psnr_y", "ssim_y"])
        last_val: dict[str, float] = {}
        bar = _progress(total=c.steps, initial=self.step, desc=c.variant, enabled=progress)
        try:
            while self.step < until:
                t0 = time.perf_counter()
                lr_batch, hr_batch = self.sampler.batch(self.step, c.batch_size)
                row = self.train_step(lr_batch, hr_batch)
                row["seconds"] = round(time.perf_counter() - t0, 4)
                losses.writerow(row)
                bar.update(1)
                # refresh=False: the bar redraws at most every mininterval, not once per step.
                bar.set_postfix(loss=f"{row['g_total']:.4g}", refresh=False,
                                **({"set5": f"{last_val['psnr_y']:.2f}"} if last_val else {}))
                # The last step is validated too: the curve and the log end at the weights a run ships.
                if c.validation_set and c.validate_every and (self.step % c.validate_every == 0
                                                              or self.step == c.steps):
                    last_val = self.validate()
                    validation.writerow(last_val)
                    self.log(f"step {self.step}: {c.validation_set} PSNR-Y {last_val['psnr_y']:.3f} dB, SSIM-Y {last_val['ssim_y']:.4f}")
                if c.keep_every and self.step % c.keep_every == 0:
                    self.save_snapshot()
                if self.step % c.checkpoint_every == 0 or self.step in (c.steps, until):
                    for fh in self._log_files:
                        fh.flush()
                        os.fsync(fh.fileno())
                    self.save_checkpoint()
                    self.plot_curves()
        finally:
            bar.close()
            for fh in self._log_files:
                fh.close()
        if self.step == c.steps:
            save_generator(self.generator, self.out / "generator.safetensors", self._generator_metadata())
        return {"step": self.step, "validation": last_val, "out_dir": str(self.out)}


# Settings that do not change what is learned: where files are, how often to save or validate, the
# device, threads and arithmetic precision (a run may move between a CPU and a GPU), and the init file
# (used only before step 1). Steps may grow (a longer run).
_RESUMABLE_CHANGES = {"out_dir", "datasets_root", "vgg_weights", "init_weights", "checkpoint_every",
                      "keep_every", "validate_every", "validation_set", "device", "threads", "steps", "precision"}


def _changed_settings(saved: dict, current: dict) -> list[str]:
    """'name: saved -> current' for each setting that differs and decides the training outcome."""
    out = []
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for key, value in current.items():
        # A setting added after the run started was, in that run, its default.
        old = saved.get(key, defaults.get(key))
        if isinstance(old, list):
            old = tuple(old)
        if isinstance(value, list):
            value = tuple(value)
        if key not in _RESUMABLE_CHANGES and old != value:
            out.append(f"{key}: {old!r} -> {value!r}")
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {os.cpu_count()} logical cores" + (
        ", AMX-BF16" if cpu_has_bf16_matrix_units() else "")


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, mininterval=2.0)


def train(config: TrainConfig, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    return Trainer(config, log=log).run(progress=progress)
