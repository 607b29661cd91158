"""The nightly gate's error rates on simulated nights: how often it cries wolf, and what it catches.

Run: python benchmarks/bench_gate.py [--nights 10000] [--seed 1]   (about a minute)
Each simulated night: a history of 7 earlier nights of 3 launches each, then tonight's 3 launches, every launch
a draw of lognormal launch noise (sigma 3 %, 10 % or 20 %) around a true figure (higher is better), tonight's
true figure lowered by 0 %, 5 %, 10 % or 20 %. The gate is the plugin's own (results/verdict.py): tonight is
flagged at SCREEN_ALPHA when it is worse by more than the 5 % gate, the flagged row is relaunched 2 more times,
and all 5 launches decide at CONFIRM_ALPHA. Printed per sigma: false alarms (no change; goal <= 1 % per case),
the share of 5/10/20 % regressions confirmed, the detectable size the report would state (its median over the
nights; at 95 % power), the share confirmed when tonight is worse by exactly the size that night's report states
(the statement's check: about 95 %), and the relaunches the gate cost per night.
"""

from __future__ import annotations

import argparse
import random
import statistics

from pytest_sglang_ablate.results import verdict

HISTORY, PER_NIGHT, TONIGHT, CONFIRM, GATE = 7, 3, 3, 2, 0.05


def night(rng: random.Random, sigma: float, drop: float | None) -> tuple[bool, int, float]:
    """One night: (confirmed as a regression, relaunches spent, the detectable size stated). With `drop` None,
    tonight is worse by exactly the size this night's report states as detectable."""
    history = [[rng.lognormvariate(0, sigma) for _ in range(PER_NIGHT)] for _ in range(HISTORY)]
    stated = verdict.gate_detectable(verdict.noise(history), TONIGHT, CONFIRM, GATE)  # type: ignore[arg-type]
    drop = stated if drop is None else drop
    tonight = [(1 - drop) * rng.lognormvariate(0, sigma) for _ in range(TONIGHT)]
    flagged = verdict.judge(tonight, history, GATE, verdict.SCREEN_ALPHA).verdict == verdict.REGRESSION
    if not flagged:
        return False, 0, stated
    tonight += [(1 - drop) * rng.lognormvariate(0, sigma) for _ in range(CONFIRM)]
    confirmed = verdict.judge(tonight, history, GATE, verdict.CONFIRM_ALPHA).verdict == verdict.REGRESSION
    return confirmed, CONFIRM, stated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nights", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(
        f"{args.nights} nights per cell; history {HISTORY} nights x {PER_NIGHT} launches; tonight {TONIGHT} "
        f"launches (+{CONFIRM} if flagged); gate {GATE:.0%}; flag at alpha {verdict.SCREEN_ALPHA}, "
        f"confirm at {verdict.CONFIRM_ALPHA}\n"
    )
    print(
        "| launch sigma | false alarms | caught 5 % | caught 10 % | caught 20 % | stated detectable "
        "| caught at that size | relaunches per night |"
    )
    print("|---" * 8 + "|")
    worst = 0.0
    for sigma in (0.03, 0.10, 0.20):
        rates, stated_sizes, relaunches = {}, [], 0
        for drop in (0.0, 0.05, 0.10, 0.20):
            results = [night(rng, sigma, drop) for _ in range(args.nights)]
            rates[drop] = sum(r[0] for r in results) / args.nights
            if drop == 0.0:
                stated_sizes = [r[2] for r in results]
                relaunches = sum(r[1] for r in results)
        stated = statistics.median(stated_sizes)
        at_size = sum(night(rng, sigma, None)[0] for _ in range(args.nights)) / args.nights
        worst = max(worst, rates[0.0])
        print(
            f"| {sigma:.0%} | {rates[0.0]:.2%} | {rates[0.05]:.1%} | {rates[0.10]:.1%} | {rates[0.20]:.1%} "
            f"| {stated:.1%} | {at_size:.1%} | {relaunches / args.nights:.3f} |"
        )
    print(f"\nworst false-alarm rate: {worst:.2%} (goal <= 1 %): {'met' if worst <= 0.01 else 'NOT met'}")


if __name__ == "__main__":
    main()
