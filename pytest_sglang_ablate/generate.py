"""Row generators: every on/off combination, or a small all-pairs covering set."""

from __future__ import annotations

import itertools
import random
from typing import Callable, Iterator

Combo = tuple[bool, ...]
Allowed = Callable[[Combo], bool]
# Past this many features we stop trying every combination as a candidate and sample instead.
EXHAUSTIVE_UP_TO = 10


def product(n: int, allowed: Allowed) -> list[Combo]:
    """All 2^n on/off combinations, the all-off one first."""
    return [c for c in itertools.product((False, True), repeat=n) if allowed(c)]


def _pairs(combo: Combo) -> Iterator[tuple[int, bool, int, bool]]:
    for i, j in itertools.combinations(range(len(combo)), 2):
        yield (i, combo[i], j, combo[j])


def pairwise(n: int, allowed: Allowed, seed: int = 0) -> list[Combo]:
    """A small set of allowed combinations that covers every coverable pair of values of any two features.

    Greedy (AETG-style): each step takes the candidate that covers the most pairs not yet covered.
    Candidates are every combination for small n, and a seeded random sample plus targeted rows otherwise.
    """
    if n == 1:
        return product(1, allowed)
    rng = random.Random(seed)
    uncovered = {(i, a, j, b) for i, j in itertools.combinations(range(n), 2) for a in (False, True) for b in (False, True)}
    pool = product(n, allowed) if n <= EXHAUSTIVE_UP_TO else None
    chosen: list[Combo] = []
    while uncovered:
        if pool is not None:
            candidates = pool
        else:
            candidates = [c for c in (tuple(rng.random() < 0.5 for _ in range(n)) for _ in range(200)) if allowed(c)]
            candidates += _targeted(n, uncovered, allowed, rng)
        best = _best(candidates, uncovered)
        if best is None and pool is None:
            # the sample missed: try harder around each pair before calling the rest uncoverable
            best = _best(_targeted(n, uncovered, allowed, rng, tries=100), uncovered)
        if best is None:
            break  # no allowed combination covers what is left
        chosen.append(best)
        uncovered.difference_update(_pairs(best))
    return chosen


def _best(candidates: list[Combo], uncovered: set[tuple[int, bool, int, bool]]) -> Combo | None:
    """The candidate covering the most uncovered pairs; None when none covers any."""
    scored = [(sum(p in uncovered for p in _pairs(c)), c) for c in candidates]
    gain, best = max(scored, key=lambda s: s[0], default=(0, ()))
    return best if gain > 0 else None


def _targeted(n: int, uncovered: set[tuple[int, bool, int, bool]], allowed: Allowed, rng: random.Random,
              tries: int = 3) -> list[Combo]:  # fmt: skip
    """Random combinations built around one uncovered pair each."""
    out = []
    for i, a, j, b in sorted(uncovered)[:50]:
        for _ in range(tries):
            combo = [rng.random() < 0.5 for _ in range(n)]
            combo[i], combo[j] = a, b
            if allowed(tuple(combo)):
                out.append(tuple(combo))
                break
    return out


def covered_pairs(rows: list[Combo]) -> set[tuple[int, bool, int, bool]]:
    return {p for c in rows for p in _pairs(c)}
