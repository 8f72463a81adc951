"""The same images and weights through pytorch-fid and through gandit give the same features and
FID. pytorch-fid downloads its weights at first use; there is no network here, so it gets
gandit's mapped weights as the torch hub cache file it looks for, in a temporary TORCH_HOME."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from gandit.cli import main
from gandit.features.inception import OFFICIAL_FILENAME, state_dict_for_pytorch_fid


@pytest.fixture(scope="module")
def pytorch_fid_home(tmp_path_factory, weights):
    home = tmp_path_factory.mktemp("torch-home")
    target = home / "hub" / "checkpoints" / OFFICIAL_FILENAME
    target.parent.mkdir(parents=True)
    torch.save(state_dict_for_pytorch_fid(weights), target)
    return home


@pytest.fixture(scope="module")
def generated_dir(tmp_path_factory, samples):
    out = tmp_path_factory.mktemp("generated")
    with zipfile.ZipFile(samples / "submissions" / "honest.zip") as zf:
        for name in zf.namelist():
            (out / name).write_bytes(zf.read(name))
    return out


def test_fid_and_features_match_pytorch_fid(pytorch_fid_home, generated_dir, samples, feature_cache,
                                            monkeypatch, tmp_path, capsys):
    from pytorch_fid.fid_score import calculate_frechet_distance, compute_statistics_of_path
    from pytorch_fid.inception import InceptionV3

    reference_dir = samples / "train" / "emoji"  # 64x64 PNGs: gandit's preprocessing leaves them as they are
    with monkeypatch.context() as patched:  # only pytorch-fid sees the temporary TORCH_HOME
        patched.setenv("TORCH_HOME", str(pytorch_fid_home))
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    stats = [compute_statistics_of_path(str(d), model, 50, 2048, "cpu", num_workers=0)
             for d in (generated_dir, reference_dir)]
    theirs = calculate_frechet_distance(*stats[0], *stats[1])

    out = tmp_path / "score.json"
    code = main(["score", str(generated_dir), "--train", str(reference_dir), "--json", str(out),
                 "--cache", str(feature_cache), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    ours = json.loads(out.read_text())
    assert ours["images"] == 48 and ours["reference_images"] == 200
    assert abs(ours["fid"] - theirs) <= 1e-3, (ours["fid"], theirs)
    assert 10 < theirs < 400  # a real distance between two real image sets, not a degenerate 0

    # The mean feature vectors agree too (a direct check on the features, not only on the FID).
    from gandit.dataset import scan_training_set
    from gandit.features.cache import FeatureCache
    from gandit.features.embed import InceptionExtractor, embed_training_set
    from gandit.features.inception import resolve_weights

    train = embed_training_set(scan_training_set(reference_dir), "center-crop", (64, 64),
                               InceptionExtractor(resolve_weights(), "cpu"), FeatureCache(feature_cache))
    assert train.embedded == 0  # served from the cache filled by `gandit score` above
    assert np.abs(train.inception.mean(axis=0) - stats[1][0]).max() <= 1e-5
