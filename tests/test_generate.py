from __future__ import annotations

import itertools

import pytest

from pytest_sglang_ablate.matrix.combinations import covered_pairs, pairwise, product


def all_pairs(n: int) -> set[tuple[int, bool, int, bool]]:
    return {(i, a, j, b) for i, j in itertools.combinations(range(n), 2) for a in (False, True) for b in (False, True)}


def test_product_gives_every_combination_all_off_first() -> None:
    rows = product(3, lambda c: True)
    assert len(rows) == 8 and len(set(rows)) == 8
    assert rows[0] == (False, False, False)


def test_product_leaves_out_combinations_that_are_not_allowed() -> None:
    rows = product(3, lambda c: not (c[0] and c[1]))
    assert len(rows) == 6 and all(not (c[0] and c[1]) for c in rows)


@pytest.mark.parametrize("n", [2, 3, 5, 9, 12, 16])
def test_pairwise_covers_every_pair_with_far_fewer_rows_than_the_product(n: int) -> None:
    rows = pairwise(n, lambda c: True)
    assert covered_pairs(rows) == all_pairs(n)
    assert len(rows) <= max(4, 2 * n.bit_length() + 2)


@pytest.mark.parametrize("n", [6, 14])
def test_pairwise_with_a_forbidden_pair_covers_everything_else_and_never_emits_it(n: int) -> None:
    def allowed(c: tuple[bool, ...]) -> bool:
        return not (c[0] and c[1])

    rows = pairwise(n, allowed)
    assert all(allowed(r) for r in rows)
    assert covered_pairs(rows) == all_pairs(n) - {(0, True, 1, True)}


def test_pairwise_is_deterministic() -> None:
    assert pairwise(14, lambda c: True) == pairwise(14, lambda c: True)


@pytest.mark.parametrize("n", [12, 16])
def test_pairwise_covers_every_coverable_pair_when_many_are_impossible(n: int) -> None:
    # the first five features are each forbidden alone (a rule per feature):
    # every pair with one of them ON is impossible
    def allowed(c: tuple[bool, ...]) -> bool:
        return not any(c[:5])

    rows = pairwise(n, allowed)
    coverable = {p for p in all_pairs(n) if not ((p[0] < 5 and p[1]) or (p[2] < 5 and p[3]))}
    assert all(allowed(r) for r in rows)
    assert covered_pairs(rows) == coverable


def test_pairwise_gives_the_same_rows_whatever_the_hash_seed() -> None:
    import subprocess
    import sys

    code = (
        "from pytest_sglang_ablate.matrix.combinations import pairwise; "
        "print(pairwise(14, lambda c: not (c[0] and c[3])))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": seed}, check=True
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1
