"""Images per second of each upscaling method on BSD100, and training steps per second of two variants.

Upscaling (4x, ``uint8`` LR in memory to ``uint8`` SR; reading files is not timed): ``nearest`` and
``bicubic`` (our MATLAB-exact :func:`sr_models.resize.imresize`), and the SRResNet generator through
:func:`sr_models.inference.upscale` untiled (``tile=None``) and with its default tile. The generator
uses the shipped ``srresnet-mse`` weights when ``<weights-dir>/srresnet-mse.safetensors`` exists, and
otherwise a randomly initialised SRResNet in eval mode (the output says which): the time does not
depend on the weights' values.

Training (Ledig et al., CVPR 2017 settings: batch 16, 96x96 HR crops, 4x): ``Trainer.train_step`` of
each of the five variants, in fp32 and, where it pays (a GPU, or a CPU with AMX-BF16), in bf16 autocast,
after warm-up steps. Batches are drawn from ``CropSampler`` beforehand, so sampling is not timed.

Defaults keep a full run under 10 minutes on two shared CPU cores with one thread (about 5): all 100
BSD100 images for every method, but only 2 warm-up and 5 timed training steps per variant (an
srgan-vgg54 step takes about 10 s on one core); the table says how many were timed. Usage::

    python benchmarks/sr_inference.py [--images N] [--network-images N] [--threads T] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sr_models.datasets import find_dataset, training_image_paths  # noqa: E402
from sr_models.inference import WeightsError, load_generator, upscale  # noqa: E402
from sr_models.methods import shipped_weights  # noqa: E402
from sr_models.networks import SRResNet  # noqa: E402
from sr_models.resize import imresize  # noqa: E402
from sr_models.training import CropSampler, Trainer, TrainConfig, cpu_has_bf16_matrix_units  # noqa: E402

DEFAULT_TILE = inspect.signature(upscale).parameters["tile"].default


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(fn, images: list[torch.Tensor], device: torch.device) -> float:
    """Images per second of ``fn`` over ``images``, after one untimed call (caches, allocator, cuDNN)."""
    fn(images[0])
    sync(device)
    t0 = time.perf_counter()
    for image in images:
        fn(image)
    sync(device)
    return len(images) / (time.perf_counter() - t0)


def generator(weights_dir: Path, device: torch.device) -> tuple[SRResNet, str]:
    try:
        path, card = shipped_weights("srresnet-mse", weights_dir)
        return load_generator(path, device=device, expected_sha256=card.get("sha256")), f"shipped weights {path.name}"
    except WeightsError:
        torch.manual_seed(0)
        model = SRResNet().to(device).eval().requires_grad_(False)
        return model, "random-initialised weights (no shipped srresnet-mse weights)"


def training_steps_per_second(
    variant: str, datasets_root: Path, device: str, threads: int | None, warmup: int, steps: int, precision: str
) -> float:
    with tempfile.TemporaryDirectory(prefix="sr-bench-") as out:
        config = TrainConfig(
            variant=variant, out_dir=out, datasets_root=str(datasets_root), steps=10**6, batch_size=16,
            crop_size=96, backbone="vgg16", validation_set=None, device=device, threads=threads,
            precision=precision,
        )
        trainer = Trainer(config, log=lambda message: None)
        paths = training_image_paths(datasets_root, ("T91",))[:20]  # enough to draw crops from
        sampler = CropSampler(paths, config.crop_size, config.scale, seed=0)
        batches = [sampler.batch(k, config.batch_size) for k in range(warmup + steps)]
        for lr, hr in batches[:warmup]:
            trainer.train_step(lr, hr)
        sync(trainer.device)
        t0 = time.perf_counter()
        for lr, hr in batches[warmup:]:
            trainer.train_step(lr, hr)  # .item() on the losses synchronises a GPU each step
        sync(trainer.device)
        return steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=100, help="BSD100 images to upscale (default all 100)")
    p.add_argument("--network-images", type=int, default=None,
                   help="BSD100 images for SRResNet, at most --images (default: --images; ~0.7 s each on one core)")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps per variant")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per variant")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--datasets-root",
                   default=os.environ.get("SR_DATASETS_ROOT", str(REPO.parent / "shared" / "datasets")))
    p.add_argument("--weights-dir", default=str(REPO / "sr_models" / "weights"))
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--variants", nargs="*", help="variants whose training steps to time (default: all five)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda, but torch sees no CUDA device")
    threads = torch.get_num_threads()
    load_before = os.getloadavg()[0]

    dataset = find_dataset("BSD100", args.datasets_root)
    lrs = [pair.load()[1].to(device) for pair in list(dataset)[: args.images]]
    net_lrs = lrs[: len(lrs) if args.network_images is None else min(args.network_images, len(lrs))]
    rows = []

    def row(method: str, value: float, unit: str, notes: str) -> None:
        rows.append((method, device.type, threads, f"{value:.3g} {unit}", notes))
        print(f"  {method}: {value:.3g} {unit}", file=sys.stderr, flush=True)

    for method in ("nearest", "bicubic"):
        ips = images_per_second(lambda lr: imresize(lr, 4, method=method), lrs, device)
        row(method, ips, "images/s", f"{len(lrs)} BSD100 images, MATLAB-exact imresize, uint8 in/out")

    model, weights_note = generator(Path(args.weights_dir), device)
    sizes = {tuple(lr.shape[-2:]) for lr in net_lrs}
    fits = all(max(s) <= DEFAULT_TILE for s in sizes)
    precisions = ("fp32", "bf16") if device.type == "cuda" else ("fp32",)
    for precision in precisions:
        for tile in (None, DEFAULT_TILE):
            ips = images_per_second(lambda lr: upscale(model, lr, tile=tile, precision=precision), net_lrs, device)
            note = f"{len(net_lrs)} BSD100 images; {weights_note}"
            if tile is not None and fits:
                note += f"; every LR ({'/'.join(f'{h}x{w}' for h, w in sorted(sizes))}) fits one tile: same work as untiled"
            row(f"SRResNet upscale(tile={tile}, {precision})", ips, "images/s", note)

    if not args.skip_training:
        variants = {
            "srresnet-mse": "MSE, no D",
            "srresnet-vgg22": "VGG16 relu2_2 content + TV + low-frequency, no D",
            "srgan-mse": "D step + MSE + adversarial",
            "srgan-vgg22": "D step + VGG16 relu2_2 content + adversarial + low-frequency",
            "srgan-vgg54": "D step + VGG16 relu5_3 content + adversarial + low-frequency",
        }
        # fp32 is what a user gets without thinking; bf16 autocast is what `precision='auto'` picks on a
        # GPU or on a CPU with AMX-BF16 units (elsewhere bf16 is emulated and slower: not timed).
        precisions = ["fp32"] + (["bf16"] if device.type == "cuda" or cpu_has_bf16_matrix_units() else [])
        for variant in args.variants or list(variants):
            for precision in precisions:
                sps = training_steps_per_second(variant, Path(args.datasets_root), args.device, args.threads,
                                                args.warmup, args.steps, precision)
                row(f"train {variant} ({precision})", sps, "steps/s",
                    f"{variants[variant]}; batch 16, 96x96 HR; {args.warmup} warm-up + {args.steps} timed steps")

    load_after = os.getloadavg()[0]
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"Machine: {cpu_model()}, {os.cpu_count()} logical cores ({len(os.sched_getaffinity(0))} usable){gpu}; "
          f"torch {torch.__version__}; Python {platform.python_version()}; "
          f"1-min load average {load_before:.2f} at start, {load_after:.2f} at end (other processes share the CPU "
          f"when it exceeds the threads used)")
    print()
    print("| method | device | threads | speed | notes |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")


if __name__ == "__main__":
    main()
