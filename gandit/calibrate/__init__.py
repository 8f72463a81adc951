"""Calibration of gandit's detectors (``gandit calibrate``), one concern per module:

``gans``        reference generators: a memorizer conditional GAN (the cheat), an honest DCGAN;
``attacks``     direct attacks made from training photos (copies, blends, crops, replays);
``thresholds``  threshold derivation, ROC points, the false-flag bound (pure maths);
``budget``      the named budgets (``small`` for a CPU, ``full`` for a GPU);
``run``         the pipeline: split, train, sample, attack, embed, forensics;
``report``      calibration.json's data; ``summary`` the terminal; ``page`` the HTML page.
"""

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
