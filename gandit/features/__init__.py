"""Feature extractors, by name. A new extractor is a module plus one ``register`` line."""

from __future__ import annotations

from collections.abc import Callable

EXTRACTORS: dict[str, Callable] = {}


def register(name: str) -> Callable:
    def wrap(factory: Callable) -> Callable:
        EXTRACTORS[name] = factory
        return factory
    return wrap
