"""Reference generators for calibrating gandit's detectors (``gandit calibrate``) and for the
forensics benchmark: a memorizer conditional GAN (the cheat) and an honest DCGAN baseline."""

from gandit.calibrate.gans import (
    HonestDiscriminator,
    HonestGenerator,
    MemorizerGenerator,
    ProjectionDiscriminator,
    load_generator,
    sample_honest,
    sample_memorizer,
    train_honest,
    train_memorizer,
)

__all__ = [
    "HonestDiscriminator",
    "HonestGenerator",
    "MemorizerGenerator",
    "ProjectionDiscriminator",
    "load_generator",
    "sample_honest",
    "sample_memorizer",
    "train_honest",
    "train_memorizer",
]
