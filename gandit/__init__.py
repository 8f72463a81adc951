"""gandit: forensics and rule audit for generative-image competitions."""

__version__ = "0.1.0"
