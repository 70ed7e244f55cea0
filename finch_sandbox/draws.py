"""Fast seeded draws: `Random.choice`/`randint` cost ~1 us each through `_randbelow`, which
dominated building 100,000 connections. These use one `random()` call instead (the tiny
bias is irrelevant for test data; determinism is what matters)."""

from __future__ import annotations

from collections.abc import Sequence
from random import Random
from typing import TypeVar

T = TypeVar("T")


def pick(rng: Random, items: Sequence[T]) -> T:
    return items[int(rng.random() * len(items))]


def shuffle(rng: Random, items: list[T]) -> None:
    """Fisher-Yates in place, one `random()` per element."""
    rand = rng.random
    for i in range(len(items) - 1, 0, -1):
        j = int(rand() * (i + 1))
        items[i], items[j] = items[j], items[i]


def between(rng: Random, low: int, high: int) -> int:
    """An int in [low, high], both ends included."""
    return low + int(rng.random() * (high - low + 1))
