"""The submission-level near-replay test: counts in, p-value out.

A memorizer GAN (one class per training image) replays training images softly: per image, the
coarse agreement with one training region that marks its outputs is also what an honest photo
of a self-similar scene gives (a tile of a sky whose other half is in training), so the
per-image replay detector must leave many of them unflagged. Per submission they stand out by
number: a *near-replay* (``forensics.replay.parts_to_coarse_score`` above 0, or any detector
at its threshold) is rare among honest images (measured on five benchmark corpora: 5-32 of
2,200 held-out photos, 0.2-1.5%) and common among a memorizer's outputs (69-85% of its
samples, 90-97% of degraded replays; BENCHMARKS.md, stop 15).

The test asks whether the submission has more near-replays than honest images have:

* with held-out real images (``--holdout``), the same forensics run on them, and the two
  rates are compared by Fisher's exact test (one-sided, alternative "the submission's rate is
  greater"): no assumed rate, the host's own distribution is the reference;
* without, a one-sided exact binomial test against ``rate``, an assumed upper bound of the
  honest share: the calibration's (``gandit calibrate`` bounds the share among its honest
  reference images) or the rule file's ``[verdict] near_replay_rate``.

Pure: counts in, a dict of plain numbers out (``scipy.stats``).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest, fisher_exact


def coarse_to_near_replay(coarse, flagged):
    """The near-replay indicator, elementwise: coarse agreement with a training region or mix
    above every honest anchor (``replay_coarse > 0``), or flagged by any detector at its
    threshold. Scalars or arrays in, the same shape out."""
    return np.logical_or(np.asarray(coarse, dtype=np.float64) > 0.0, flagged)


def is_near_replay(scores: dict[str, float], evidence: dict[str, float], thresholds: dict[str, float]) -> bool:
    """A finding's near-replay indicator (``coarse_to_near_replay``)."""
    return bool(coarse_to_near_replay(evidence.get("replay_coarse", 0.0),
                                      any(score >= thresholds.get(kind, 0.5) for kind, score in scores.items())))


def counts_to_near_replay_test(near: int, images: int, *, holdout_near: int | None = None,
                               holdout_images: int | None = None, rate: float | None = None) -> dict:
    """p-value that ``near`` near-replays among ``images`` submitted images are no more than
    honest images have: against ``holdout_near`` of ``holdout_images`` when given (Fisher),
    else against the assumed ``rate`` (binomial). ``p_value`` is None, with a ``note``, when
    neither reference exists or the submission is empty."""
    if not 0 <= near <= images:
        raise ValueError(f"near-replays ({near}) must lie between 0 and the images ({images})")
    out = {"test": None, "near_replays": int(near), "images": int(images), "holdout_near_replays": None,
           "holdout_images": None, "rate": None, "p_value": None, "note": None}
    if images == 0:
        out["note"] = "no submitted images"
        return out
    if holdout_images:
        if not 0 <= (holdout_near or 0) <= holdout_images:
            raise ValueError(f"held-out near-replays ({holdout_near}) must lie between 0 and the held-out "
                             f"images ({holdout_images})")
        held = int(holdout_near or 0)
        table = [[near, images - near], [held, holdout_images - held]]
        out.update(test="fisher", holdout_near_replays=held, holdout_images=int(holdout_images),
                   rate=held / holdout_images, p_value=float(fisher_exact(table, alternative="greater").pvalue))
        return out
    if rate is None:
        out["note"] = "no reference: pass --holdout or set [verdict] near_replay_rate"
        return out
    if not 0.0 < rate < 1.0:
        raise ValueError(f"the assumed near-replay rate must lie in (0, 1), not {rate}")
    out.update(test="binomial", rate=float(rate),
               p_value=float(binomtest(near, images, rate, alternative="greater").pvalue))
    return out
