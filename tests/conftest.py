"""Shared fixtures. Inception forwards are the expensive part (~10 images/s on 2 CPU cores):
every test that embeds images shares one session-wide feature cache, so the bundled samples
are embedded once per test run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def truth() -> dict:
    return json.loads((SAMPLES / "submissions" / "truth.json").read_text())


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    """One feature cache for the whole session."""
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def weights():
    from gandit.features.inception import resolve_weights

    return resolve_weights()


@pytest.fixture(scope="session")
def model(weights):
    from gandit.features.inception import build_model

    return build_model(weights)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """Tests never read the user's weights overrides or write to the user's cache."""
    monkeypatch.delenv("GANDIT_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("GANDIT_CACHE", str(tmp_path_factory.getbasetemp() / "user-cache"))


def load_png_dir(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]


@pytest.fixture(scope="session")
def train_emoji() -> list[np.ndarray]:
    return load_png_dir(SAMPLES / "train" / "emoji")


@pytest.fixture(scope="session")
def holdout_emoji() -> list[np.ndarray]:
    return load_png_dir(SAMPLES / "holdout" / "emoji")


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
