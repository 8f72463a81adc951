"""Detectors, by kind. A new detector is a module plus one ``register`` line; the result's
``thresholds`` and the rule file's ``[thresholds]`` keys come from the kinds listed here."""

from __future__ import annotations

from collections.abc import Callable

DETECTORS: dict[str, Callable] = {}


def register(kind: str) -> Callable:
    def wrap(fn: Callable) -> Callable:
        DETECTORS[kind] = fn
        return fn
    return wrap
