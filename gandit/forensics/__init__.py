"""Forensic detectors, one module per concern (``copy``, ``align``, ``blend``, ``replay``),
combined per image by ``analyze``. ``KINDS`` is the one list of kinds: the order in which a
kind is chosen (result.json contract), the keys of ``thresholds`` in results, rule files and
calibration files."""

KINDS = ("copy", "crop", "blend", "replay")
