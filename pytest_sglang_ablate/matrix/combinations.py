"""Row generators: every on/off combination, or a small all-pairs covering set."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator

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
    """A small set of allowed combinations covering every coverable pair of values of any two features.

    `allowed` must be monotone, as known-issue rules are: switching a feature off never makes an allowed
    combination disallowed. Then a pair is coverable exactly when the combination with only the pair's ON
    values is allowed, so impossible pairs are dropped up front and coverage of the rest is guaranteed.
    Greedy (AETG-style): each step takes the candidate covering the most pairs not yet covered; candidates are
    every combination for small n, otherwise a seeded random sample plus one combination built around each
    uncovered pair.
    """
    if n == 1:
        return product(1, allowed)
    rng = random.Random(seed)
    uncovered = {p for p in _all_pairs(n) if allowed(_minimal(n, p))}
    pool = product(n, allowed) if n <= EXHAUSTIVE_UP_TO else None
    chosen: list[Combo] = []
    while uncovered:
        if pool is not None:
            candidates = pool
        else:
            candidates = [c for c in (tuple(rng.random() < 0.5 for _ in range(n)) for _ in range(200)) if allowed(c)]
            candidates += [_around(n, p, allowed, rng) for p in sorted(uncovered)]
        scored = [(sum(p in uncovered for p in _pairs(c)), c) for c in candidates]
        gain, best = max(scored, key=lambda s: s[0])
        if gain == 0:
            break  # only possible with a non-monotone `allowed`
        chosen.append(best)
        uncovered.difference_update(_pairs(best))
    return chosen


def _all_pairs(n: int) -> set[tuple[int, bool, int, bool]]:
    return {(i, a, j, b) for i, j in itertools.combinations(range(n), 2) for a in (False, True) for b in (False, True)}


def _minimal(n: int, pair: tuple[int, bool, int, bool]) -> Combo:
    """The combination with only the pair's ON values on."""
    i, a, j, b = pair
    return tuple((k == i and a) or (k == j and b) for k in range(n))


def _around(n: int, pair: tuple[int, bool, int, bool], allowed: Allowed, rng: random.Random) -> Combo:
    """A random combination holding `pair`, or the minimal one (allowed by construction) if a few tries fail."""
    i, a, j, b = pair
    for _ in range(3):
        combo = [rng.random() < 0.5 for _ in range(n)]
        combo[i], combo[j] = a, b
        if allowed(tuple(combo)):
            return tuple(combo)
    return _minimal(n, pair)


def covered_pairs(rows: list[Combo]) -> set[tuple[int, bool, int, bool]]:
    return {p for c in rows for p in _pairs(c)}
