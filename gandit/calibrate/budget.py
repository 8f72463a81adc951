"""How much work ``gandit calibrate`` does: named budgets (``--budget small|full``).

A budget fixes everything that costs time: how many training photos are held out, how many
classes the memorizer learns and for how long, how long the honest GAN trains, and how many
images of each source go through Inception and the forensics. It is part of what the GAN
checkpoints are keyed by and is written into ``calibration.json``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from gandit.calibrate.attacks import ATTACK_KINDS


@dataclass(frozen=True)
class Budget:
    """Sizes and step counts of one calibration run (see :data:`BUDGETS`)."""

    name: str
    #: Held-out split when no --holdout is given: this share of the training photos, at most
    #: ``holdout_max``; with --holdout at most ``holdout_max`` of its images (chosen by seed).
    holdout_fraction: float
    holdout_max: int
    #: Memorizer: classes (training photos, one class each; None = every reference photo),
    #: passes over them (each pass shows every class once), step cap, batch size.
    memorizer_classes: int | None
    memorizer_epochs: int
    memorizer_max_steps: int
    memorizer_batch: int
    #: Honest GAN: optimisation steps, batch size, photos it trains on (None = all reference photos).
    honest_steps: int
    honest_batch: int
    honest_images: int | None
    #: Channel width of both GANs (``gandit.calibrate.gans``; 16 trains on a CPU).
    gan_width: int
    #: Images per cheating source (each memorizer class mix, each direct attack).
    samples: int
    #: Honest-GAN samples (honest reference images besides the held-out photos).
    honest_samples: int
    #: GAN checkpoints every this many steps (an interrupted run resumes from the last one).
    checkpoint_every: int
    attacks: tuple[str, ...] = tuple(ATTACK_KINDS)

    def memorizer_steps(self, classes: int) -> int:
        """Steps that show each of ``classes`` classes ``memorizer_epochs`` times, capped."""
        return min(self.memorizer_max_steps, math.ceil(self.memorizer_epochs * classes / self.memorizer_batch))

    def holdout_count(self, photos: int) -> int:
        """Photos held out of ``photos`` training photos (at least 1)."""
        return max(1, min(self.holdout_max, round(self.holdout_fraction * photos)))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["attacks"] = list(self.attacks)
        return out


#: ``small``: for a CPU. Measured on ``samples/train`` (206 images) with 2 cores: 6 min 52 s
#: from a cold cache (Inception of the training set included), 17 min while another job shared
#: the cores, 8 s warm (all caches filled); a training set of a few thousand photos adds its
#: embedding (~10 images/s). The GANs are weak at this size: the honest GAN makes blurry colour
#: fields, the memorizer reproduces its 96 photos coarsely (but ~95% of its samples are
#: flagged), so the thresholds rest mostly on the held-out real photos.
SMALL = Budget(
    name="small", holdout_fraction=0.1, holdout_max=500,
    memorizer_classes=96, memorizer_epochs=800, memorizer_max_steps=1200, memorizer_batch=64,
    honest_steps=600, honest_batch=64, honest_images=None, gan_width=16,
    samples=96, honest_samples=256, checkpoint_every=200)

#: ``full``: for a GPU. The memorizer learns every reference photo (1,000 passes, at most
#: 200,000 steps of 256: ~78,000 steps for 20,000 photos), the honest GAN trains 30,000 steps,
#: both at width 32, and 1,000 images of each cheating source, 5,000 honest-GAN samples and up
#: to 500 held-out photos (~13,500 images) go through the forensics. Expected, not measured (no
#: GPU was at hand): with 20,000 training photos on one recent GPU, ~10-20 min of memorizer and
#: ~5-10 min of honest-GAN training (these small networks take a few ms per step), ~3 min of
#: Inception for the training set and the samples, and ~20-25 min of forensics, which runs on
#: one CPU core at ~0.1 s per image: about an hour in all. On a CPU alone it would take days.
#: Checkpoints every 2,000 steps (well under a minute on a GPU), and Inception features and
#: forensic scores are cached per image as they come, so it can run in chunks of under 10
#: minutes: run the same command again after an interruption and it resumes.
FULL = Budget(
    name="full", holdout_fraction=0.1, holdout_max=500,
    memorizer_classes=None, memorizer_epochs=1000, memorizer_max_steps=200_000, memorizer_batch=256,
    honest_steps=30_000, honest_batch=64, honest_images=None, gan_width=32,
    samples=1000, honest_samples=5000, checkpoint_every=2000)

BUDGETS = {b.name: b for b in (SMALL, FULL)}
