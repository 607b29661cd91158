"""report.md from the results: the seed page's two tables, footnotes for what did not run, what each feature
bought, and the comparison with a baseline run; `write` puts it in the results directory, linking the plots.
Reads records only; launches nothing."""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .. import redact
from ..matrix.model import Matrix
from ..results.record import CaseResult, headline


class Notes:
    """Numbered footnotes, one per distinct reason, in order of first use."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def ref(self, text: str) -> str:
        if text not in self.items:
            self.items.append(text)
        return f"[{self.items.index(text) + 1}]"


def _why(r: CaseResult) -> str:
    if r.failure_class:
        phase = f" during {r.failure_phase}" if r.failure_phase else ""
        return f"{r.failure_class}{phase}: {r.message or ''}".strip()
    if r.outcome == "xpassed" or "XPASS" in (r.message or ""):
        return f"ran, although a known issue says it should not: {r.known_issue} (the rule is stale)"
    return str(r.message or r.outcome)


def _trend_note(r: CaseResult, notes: Notes) -> str:
    """A note on a level (or TPS@1) whose repetitions trended: first slow, then fast."""
    found = (r.figures or {}).get("repetition_trend") or {}
    if not found.get("marked"):
        return ""
    note = (
        f"repetitions trend: the first was {1 - found['first_vs_rest']:.0%} below the others' median"
        + (", and they only rose" if found.get("rising") else "")
        + "; the warm-up did not reach this level's shapes (a kernel compiled inside the first?): more `repeat`, "
        "a `warmup:` level, or a later launch would say whether the median is steady"
    )
    return " " + notes.ref(note)


def _runnable(r: CaseResult, notes: Notes) -> str:
    if r.outcome == "passed":
        return _passed(r, notes) + _trend_note(r, notes)
    return _not_passed(r, notes)


def _passed(r: CaseResult, notes: Notes) -> str:
    beside = (r.figures or {}).get("overlapped_by") or {}
    if beside:  # measured while other rows ran (pytest-xdist): they shared CPU, host memory and PCIe
        rows = ", ".join(f"{row} ({seconds:g} s)" for row, seconds in sorted(beside.items()))
        note = f"measured while other rows ran beside it: {rows}; --ablate-exclusive runs one row at a time"
        return f"yes {notes.ref(note)}"
    return "yes"


def _not_passed(r: CaseResult, notes: Notes) -> str:
    if r.outcome == "xfailed":
        return f"no {notes.ref('known issue: ' + str(r.known_issue))}"
    if r.outcome == "skipped" and r.failure_class == "too_big":
        return f"not run {notes.ref('not run: ' + str(r.message))}"
    return f"no {notes.ref(_why(r))}"


def _num(value: Any, digits: int = 2) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _figure(r: CaseResult, key: str, digits: int = 2) -> str:
    """A figure as the tables show it: the median over launches with their range, `101.2 [95.0-110.3] (3)`, where
    the row had several launches; else the one launch's figure."""
    figures = r.figures or {}
    value = _num(figures.get(key), digits)
    between = (figures.get("launch_spread") or {}).get(key)
    if not value or not between or between["n"] < 2:
        return value
    return f"{value} [{_num(between['min'], digits)}-{_num(between['max'], digits)}] ({between['n']})"


def _with_api(records: list[CaseResult], rows: list[list[Any]], headers: list[str]) -> None:
    """API and client columns after the figure, only where some figure came through another API than the OpenAI
    one, or was measured by another client than ours (`client: openai`, the seed page's method)."""
    for key, header, usual in (("client", "Client", "ours"), ("api", "API", "openai")):
        values = [(r.figures or {}).get(key, "") for r in records]
        if any(v not in (usual, "") for v in values):
            headers.insert(2, header)
            for row, value in zip(rows, values, strict=True):
                row.insert(2, value)


def single_table(records: list[CaseResult], features: list[str], notes: Notes) -> str:
    rows = []
    single = [r for r in records if r.kind == "single"]
    agreed = agreement_cells(records, notes)
    for r in single:
        on = set(r.features)
        rows.append([_runnable(r, notes), _figure(r, "tps_at_1", 1), *["✓" if f in on else "" for f in features]])
        if agreed:  # the seed page's table, with each row's agreement beside its TPS@1
            rows[-1].insert(2, "; ".join(cell for (row, _), cell in agreed.items() if row == r.row))
    headers = ["Runnable", "TPS@1", *features]
    if agreed:
        headers.insert(2, "Agreement with the baseline")
    _with_api(single, rows, headers)
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True) if rows else "(no single-query cases)"


def batch_table(records: list[CaseResult], notes: Notes) -> str:
    rows = []
    for r in records:
        if r.kind != "batch":
            continue
        figures = r.figures or {}
        config = figures.get("effective_config") or {}
        rows.append(
            [
                _runnable(r, notes),
                ", ".join(r.features) or "(none)",
                f"{r.rate:g}/s" if r.rate is not None else r.concurrency,
                _figure(r, "throughput_tok_s"),
                _figure(r, "per_request_decode_tok_s"),
                r.requests,
                config.get("max_running_requests", ""),
            ]
        )
    headers = [
        "Runnable",
        "Features on",
        "Concurrency",
        "Avg throughput (p+d), tok/s",
        "Per-req throughput (d), tok/s",
        "Total req",
        "Max running req",
    ]
    batch = [r for r in records if r.kind == "batch"]
    checked = [(r.figures or {}).get("cross_check") for r in batch]
    if any(checked):  # the same levels measured by the engine's own client: both figures side by side
        headers += ["bench_serving (p+d), tok/s", "TPOT ours / bench_serving, ms"]
        for row, r, other in zip(rows, batch, checked, strict=True):
            mine = (r.figures or {}).get("tpot_ms_mean")
            theirs = (other or {}).get("tpot_ms_mean")
            tpot = f"{_num(mine)} / {_num(theirs)}" if other and mine is not None else ""
            row += [_num((other or {}).get("throughput_tok_s")), tpot]
    _with_api(batch, rows, headers)
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True) if rows else "(no batch cases)"


def _headline(r: CaseResult) -> tuple[str, float] | None:
    figures = r.figures or {}
    key = headline(r.kind)
    value = figures.get(key)
    if r.outcome != "passed" or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return key, float(value)


def _launch_values(r: CaseResult, key: str) -> list[float]:
    """The headline figure of each launch that passed (one value for a row of one launch)."""
    figures = r.figures or {}
    launches = figures.get("launches")
    if launches:
        return [
            float(x[key]) for x in launches if x.get("outcome") == "passed" and isinstance(x.get(key), (int, float))
        ]
    return [float(figures[key])]


def capacity(records: list[CaseResult], notes: Notes) -> str:
    """Each row's capacity under each SLO workload's targets (measure/slo.py), the best row of each marked."""
    slo = [r for r in records if r.kind == "slo"]
    best: dict[str, float] = {}
    for r in slo:
        load = (r.figures or {}).get("capacity")
        if r.outcome == "passed" and isinstance(load, (int, float)):
            best[r.workload] = max(best.get(r.workload, 0.0), float(load))
    rows = []
    for r in slo:
        f = r.figures or {}
        targets = ", ".join(f"{m} {p} <= {v:g}" for m, pcts in (f.get("slo") or {}).items() for p, v in pcts.items())
        load = f.get("capacity")
        unit = "/s" if f.get("variable") == "rate" else " in flight"
        said = f"{load:g}{unit}" if isinstance(load, (int, float)) else str(f.get("capacity_said") or "")
        if isinstance(load, (int, float)) and not f.get("bounded", True):
            said = f">= {said}"
        rows.append(
            [
                _runnable(r, notes),
                ", ".join(r.features) or "(none)",
                r.workload,
                targets,
                said + (" (best)" if isinstance(load, (int, float)) and best.get(r.workload) == load else ""),
                _num(f.get("goodput_req_s")),
                len(f.get("probes") or []),
            ]
        )
    headers = ["Runnable", "Features on", "Workload", "Targets", "Capacity", "Goodput at it, req/s", "Probes"]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _agreement_of(r: CaseResult, records: list[CaseResult]) -> dict[str, Any] | None:
    """A passed (or kept) agreement record's comparison with its reference: its own, or, for a row that had no
    reference when it ran (pytest-xdist, a failed reference), computed here from both records' outputs, with the
    workload's tolerance applied (`late_problems`: why the row would have failed its case)."""
    from ..matrix.model import AgreementWorkload
    from ..measure.agreement import Output, agreement

    figures = r.figures or {}
    if "identical_share" in figures:
        return figures
    if not figures.get("outputs") or figures.get("compared") is not False:  # a failed row's outputs are partial
        return None
    refs = [x for x in records if x.workload == r.workload and (x.figures or {}).get("is_reference")]
    if not refs:
        return None
    ref = refs[0].figures or {}
    found = agreement([Output.of(o) for o in ref["outputs"]], [Output.of(o) for o in figures["outputs"]])
    tolerance = AgreementWorkload(
        r.workload, (), min_identical=figures.get("min_identical", 0.0), min_close=figures.get("min_close", 1.0)
    )
    problems = found.problems(tolerance, f"row '{ref.get('reference_row')}'")
    return {
        **figures,
        **found.figures(),
        "reference_row": ref.get("reference_row"),
        "compared_in_report": True,
        "late_problems": problems,
    }


def late_agreement_failures(records: list[CaseResult]) -> list[str]:
    """Rows compared only after the run (pytest-xdist) whose outputs diverge beyond the tolerance: the run fails
    for them as their cases would have."""
    out = []
    for r in (x for x in records if x.kind == "agreement"):
        problems = (_agreement_of(r, records) or {}).get("late_problems")
        if problems and not r.known_issue:
            out.append(f"row {r.row}, {r.workload}: {problems[0]}")
    return out


def _reference_cell(r: CaseResult, figures: dict[str, Any], notes: Notes) -> str:
    """The reference row's cell: "reference", and how its other launches agreed with the launch that was it."""
    n = int(figures.get("prompts") or 1)  # a median over launches: a float
    others = [
        x
        for x in figures.get("launches") or []
        if x.get("launch") != figures.get("reference_launch") and "identical_share" in x
    ]
    text = "reference"
    if others:
        said = ", ".join(f"launch {x['launch']} {round(x['identical_share'] * n)}/{n} identical" for x in others)
        text += f" (launch {figures.get('reference_launch')}; {said})"
    if r.outcome in ("failed", "xfailed"):
        why = f"known issue: {r.known_issue}; " if r.outcome == "xfailed" else ""
        text += " " + notes.ref(f"row {r.row}, {r.workload}: {why}a launch diverged from the first: {r.message}")
    return text


def agreement_cells(records: list[CaseResult], notes: Notes) -> dict[tuple[str, str], str]:
    """(row, workload) -> what report.md says of the row's agreement with the reference: "reference", "5/5
    identical", "2/5 identical, 5/5 close", or why there is none; a note per row that failed its tolerance."""
    out = {}
    for r in (x for x in records if x.kind == "agreement"):
        figures = _agreement_of(r, records)
        if figures is None:
            out[(r.row, r.workload)] = _runnable(r, notes) if r.outcome != "passed" else ""
            continue
        if figures.get("is_reference"):
            out[(r.row, r.workload)] = _reference_cell(r, figures, notes)
            continue
        n = len(figures.get("divergences") or []) or 1
        same, close = round(figures["identical_share"] * n), round(figures["close_share"] * n)
        text = f"{same}/{n} identical" + (f", {close}/{n} close" if same < n else "")
        if r.outcome in ("failed", "xfailed"):
            from ..measure.agreement import Divergence

            kept = [Divergence(**{k: v for k, v in d.items() if k != "identical"}) for d in figures["divergences"]]
            worst = next((d for d in kept if not d.close), None) or next((d for d in kept if not d.identical), None)
            why = f"known issue: {r.known_issue}; " if r.outcome == "xfailed" else ""
            text += " " + notes.ref(f"row {r.row}, {r.workload}: {why}{worst.said() if worst else r.message}")
        elif figures.get("late_problems"):
            text += " " + notes.ref(
                f"row {r.row}, {r.workload}: compared here, after the run (the reference had not run when this row "
                f"did), and beyond the tolerance, so the run fails: {'; '.join(figures['late_problems'])}"
            )
        elif figures.get("compared_in_report"):
            text += " " + notes.ref("compared here, after the run: the reference had not run when this row did")
        out[(r.row, r.workload)] = text
    return out


def agreement_table(records: list[CaseResult], notes: Notes) -> str:
    """Each row's greedy outputs against the reference row's (kind agreement), one line per row and workload."""
    cells = agreement_cells(records, notes)
    rows = []
    for r in (x for x in records if x.kind == "agreement"):
        figures = _agreement_of(r, records) or {}
        firsts = figures.get("first_divergence") or []
        shown = ", ".join("-" if p is None else str(p) for p in firsts)
        reference = figures.get("reference_row") or ""
        rows.append([", ".join(r.features) or "(none)", r.workload, reference, cells[(r.row, r.workload)], shown])
    headers = ["Features on", "Workload", "Reference row", "Agreement with the baseline", "First divergence (token)"]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _level_order(level: str | None) -> tuple[int, float]:
    """Closed-loop levels by concurrency, then open-loop ones by rate."""
    if level is None:
        return (0, 0.0)
    return (1 if level.startswith("c") else 2, float(level[1:]))


@dataclass(frozen=True)
class Pair:
    """Two rows that differ in one feature, at one workload and level, and how sure their ratio is."""

    feature: str
    workload: str
    level: str | None  # c16, r8; None for TPS@1
    others: frozenset[str]  # the features on in both rows
    ratio: Any  # results.verdict.Ratio


def _levels(
    records: list[CaseResult], earlier: dict[Any, tuple[float, int]] | None
) -> tuple[dict[tuple[frozenset[str], str, Any], list[float]], dict[Any, tuple[float, int] | None]]:
    """Each row's headline figure per launch at each (workload, level), and the launch spread pooled per level."""
    from ..results import verdict

    values: dict[tuple[frozenset[str], str, Any], list[float]] = {}
    for r in records:
        h = _headline(r)
        if h is not None:
            values[(frozenset(r.features), r.workload, r.level)] = _launch_values(r, h[0])
    pooled = {
        level: verdict.pooled_sd([v for (_, w, c), v in values.items() if (w, c) == level])
        or (earlier or {}).get(level)
        for level in {(w, c) for _, w, c in values}
    }
    return values, pooled


def pairs(
    records: list[CaseResult], features: list[str], earlier: dict[Any, tuple[float, int]] | None = None
) -> list[Pair]:
    from ..results import verdict

    values, pooled = _levels(records, earlier)
    out = []
    for f in features:
        found = [(on, w, c) for on, w, c in values if f in on and (on - {f}, w, c) in values]
        for on, workload, level in sorted(found, key=lambda k: (k[1], _level_order(k[2]), sorted(k[0]))):
            result = verdict.ratio(
                values[(on, workload, level)], values[(on - {f}, workload, level)], pooled[(workload, level)]
            )
            out.append(Pair(f, workload, level, on - {f}, result))
    return out


def attribution(
    records: list[CaseResult], features: list[str], earlier: dict[Any, tuple[float, int]] | None = None
) -> str:
    """For each feature, each pair of rows that differ only in it: the ratio of the headline metric with its 95 %
    interval over launches (results/verdict.py) and the verdict: faster, slower, or within the noise. The launch
    spread is pooled over every row of that metric and level; where tonight has none (one launch per row), the
    history's at that level (`earlier`, from --ablate-history) stands in."""
    table = []
    for p in pairs(records, features, earlier):
        metric = "TPS@1" if p.level is None else f"throughput {p.level}"
        table.append(
            [
                p.feature,
                f"{p.workload}: {metric}",
                "+".join(sorted(p.others)) or "(none)",
                p.ratio.text(),
                p.ratio.verdict,
                f"{p.ratio.launches[0]} / {p.ratio.launches[1]}",
            ]
        )
    if not table:
        return "(no pair of measured rows differs in exactly one feature)"
    return tabulate(
        table,
        ["Feature", "Metric", "Other features on", "On / off [95 % interval]", "Verdict", "Launches on / off"],
        tablefmt="github",
        disable_numparse=True,
    )


def advice(records: list[CaseResult], features: list[str], earlier: dict[Any, tuple[float, int]] | None = None) -> str:
    """What this run supports, in words: for each feature the loads where it made its rows faster, slower or no
    difference beyond the noise; for each batch workload the best row at each load, a lead within the noise
    said as such, and where the best row changes (only between loads where the lead is beyond the noise)."""
    from ..results import verdict

    lines = []
    found = pairs(records, features, earlier)
    for f in features:
        said: dict[str, list[str]] = {}
        for p in (p for p in found if p.feature == f):
            where = "TPS@1" if p.level is None else f"{p.workload} {p.level}"
            if sum(1 for q in found if (q.feature, q.workload, q.level) == (f, p.workload, p.level)) > 1:
                where += f" (with {'+'.join(sorted(p.others)) or 'nothing else'})"
            said.setdefault(p.ratio.verdict, []).append(where)
        if said:
            lines.append(f"- **{f}**: " + "; ".join(f"{v} at {', '.join(w)}" for v, w in said.items()))
    values, pooled = _levels(records, earlier)
    for workload in sorted({w for _, w, c in values if c is not None}):
        levels = sorted({c for _, w, c in values if w == workload and c is not None}, key=_level_order)
        steps: list[tuple[str, str, bool]] = []
        for level in levels:
            rows = sorted(
                ((on, v) for (on, w, c), v in values.items() if (w, c) == (workload, level) and v),
                key=lambda rv: -statistics.median(rv[1]),
            )
            if len(rows) < 2:
                continue
            lead = verdict.ratio(rows[0][1], rows[1][1], pooled[(workload, level)])
            best = "+".join(sorted(rows[0][0])) or "baseline"
            ahead = lead.verdict == verdict.FASTER
            second = "+".join(sorted(rows[1][0])) or "baseline"
            tie = "" if ahead else f" (within the noise of {second})"
            if lead.verdict == verdict.UNKNOWN:
                tie = f" (ahead of {second}; noise unknown: one launch each)"
            steps.append((level, best + tie, ahead))
        if steps:
            text = ", ".join(f"{level}: {best}" for level, best, _ in steps)
            lines.append(f"- **{workload}**, the fastest row by load: {text}")
            leads = [(level, best) for level, best, ok in steps if ok]
            changes = [f"{a[1]} at {a[0]} to {b[1]} at {b[0]}" for a, b in itertools.pairwise(leads) if a[1] != b[1]]
            if changes:
                lines.append(f"  - the best row changes (beyond the noise) from {'; from '.join(changes)}")
    if not lines:
        return "(nothing this run measured supports advice: no pair of rows differs in one feature)"
    return "\n".join(lines)


def _pct(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.1%}"


def history(gate: Sequence[dict[str, Any]], order: Sequence[str] = ()) -> str:
    """Each case against the earlier nights (results/history.py): the nights' median and range, tonight's figure,
    the change, the gate's verdict, and the smallest regression this history can detect (95 % power)."""
    if not gate:
        return "(no case measured tonight was found in the history)"
    rank = {case: i for i, case in enumerate(order)}
    rows = []
    for g in sorted(gate, key=lambda g: rank.get(g["case"], len(rank))):
        low, high = g["history_range"] or (None, None)
        versions = f" (history: {', '.join(g['history_engine_versions'])})" if g["history_engine_versions"] else ""
        needed = g["launches_needed_for_twice_the_gate"]
        relaunched = f", {g['relaunched']} of them relaunches" if g["relaunched"] else ""
        rows.append(
            [
                g["case"],
                g["metric"],
                f"{_num(g['history_median'])} [{_num(low)}-{_num(high)}] ({g['nights']})" if g["nights"] else "",
                f"{_num(g['tonight'])} ({g['launches']}{relaunched})" if g["tonight"] is not None else "",
                _pct(g["change"]),
                g["verdict"] + versions,
                _pct(g["detectable"]).lstrip("+"),
                "" if needed is None and g["detectable"] is None else (str(needed) if needed else "more history"),
            ]
        )
    headers = [
        "Case",
        "Metric",
        "History median [range] (nights)",
        "Tonight (launches)",
        "Change",
        "Verdict",
        "Detectable (95 %)",
        "Launches for 2x the gate",
    ]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def compare(records: list[CaseResult], baseline: list[CaseResult]) -> str:
    """Each case's headline metric against the baseline run's, regressions first. Where both runs have several
    launches, the band is the ratio's 95 % interval over launches (results/verdict.py); else the two runs' own
    spread over repetitions (min-max), which misses the noise between launches and says so."""
    from ..results import verdict as stats

    base = {r.case: r for r in baseline}
    rows = []
    for r in records:
        b = base.get(r.case)
        now, then = _headline(r), _headline(b) if b else None
        if now is None or then is None or b is None:
            continue
        ratio = now[1] / then[1]
        launches = (_launch_values(r, now[0]), _launch_values(b, now[0]))
        result = stats.ratio(*launches) if min(len(v) for v in launches) >= 2 else None
        if result is not None and result.low is not None and result.high is not None:
            said = {stats.FASTER: "improvement", stats.SLOWER: "regression"}.get(result.verdict, "within noise")
            band = f"[{result.low:.3f}-{result.high:.3f}] ({len(launches[0])} / {len(launches[1])} launches)"
            rows.append([r.case, now[0], _num(then[1]), _num(now[1]), f"{result.value:.3f}", band, said])
            continue
        spread_key = f"{now[0]}_spread"
        bands = [(x.figures or {}).get(spread_key) or {} for x in (r, b)]
        noise = max(((s.get("max", 0) - s.get("min", 0)) / s["median"] for s in bands if s.get("median")), default=0.0)
        verdict = "regression" if ratio < 1 - noise else "improvement" if ratio > 1 + noise else "within noise"
        rows.append([r.case, now[0], _num(then[1]), _num(now[1]), f"{ratio:.3f}", f"±{noise:.1%} (repeats)", verdict])
    rows.sort(key=lambda row: float(row[4]))
    if not rows:
        return "(no case measured in both runs)"
    return tabulate(
        rows,
        ["Case", "Metric", "Baseline", "Now", "Ratio", "Noise band", "Verdict"],
        tablefmt="github",
        disable_numparse=True,
    )


@dataclass(frozen=True)
class Report:
    text: str  # the whole of report.md
    brief: str  # the outcome line, the two tables and their notes: what the terminal summary shows
    late_failures: tuple[str, ...] = ()  # rows compared after the run that fail their tolerance (exit status 1)


def render(
    name: str,
    features: list[str],
    records: list[CaseResult],
    environment: dict[str, Any],
    baseline: list[CaseResult] | None = None,
    order: Sequence[str] = (),
    gate: Sequence[dict[str, Any]] | None = None,
    earlier: dict[Any, tuple[float, int]] | None = None,
) -> Report:
    """The report of `records`, cases in `order` (the matrix's case ids; others after them) however they finished
    (pytest-xdist, --ablate-resume): a nightly report diffs line by line against last night's."""
    rank = {case: i for i, case in enumerate(order)}
    records = sorted(records, key=lambda r: rank.get(r.case, len(rank)))
    notes = Notes()
    single, batch = single_table(records, features, notes), batch_table(records, notes)
    # before the notes are listed: these tables' notes go into the same list
    slo_text = capacity(records, notes) if any(r.kind == "slo" for r in records) else None
    agreed_text = agreement_table(records, notes) if any(r.kind == "agreement" for r in records) else None
    outcomes: dict[str, int] = defaultdict(int)
    for r in records:
        outcomes[r.outcome] += 1
    brief = [
        ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) + f" ({len(records)} cases)",
        "",
        "## Single query (TPS@1, tokens/s of one request)",
        "",
        single,
        "",
        "## Offline batch",
        "",
        batch,
        "",
    ]
    if agreed_text is not None:  # a row that answers wrong matters as much as its speed
        brief += ["## Agreement with the baseline", "", agreed_text, ""]
    if notes.items:
        brief += ["Notes:", "", *[f"{i}. {text}" for i, text in enumerate(notes.items, 1)], ""]
    parts = [f"# Ablation report: {name}", "", *brief]
    if slo_text is not None:
        parts += ["## Capacity at the SLO", "", slo_text, ""]
    parts += ["## What each feature bought", "", attribution(records, features, earlier), ""]
    parts += ["## Advice from this run", "", advice(records, features, earlier), ""]
    if baseline is not None:
        parts += ["## Against the baseline", "", compare(records, baseline), ""]
    if gate is not None:
        parts += ["## Compared with history", "", history(gate, order), ""]
    parts += [
        "## Environment",
        "",
        *[f"- {k}: {v}" for k, v in environment.items()],
        "",
        "Figures and their sources: docs/metrics.md "
        "(token counts from the server's usage, times from the client's clock).",
    ]
    return Report("\n".join(parts) + "\n", "\n".join(brief).rstrip(), tuple(late_agreement_failures(records)))


def write(
    matrix: Matrix,
    records: list[CaseResult],
    out_dir: Path,
    expected_version: str | None,
    gpus: list[dict[str, Any]],
    secrets: set[str],
    baseline: list[CaseResult] | None = None,
    order: Sequence[str] = (),
    pngs: Sequence[Path] = (),
    gate: Sequence[dict[str, Any]] | None = None,
    earlier: dict[Any, tuple[float, int]] | None = None,
) -> tuple[Report, Path] | None:
    """report.md in `out_dir` from every record of this matrix, cases in `order` (see render), linking the plots
    `pngs` (written before, by plots.render: a plot that failed costs the report only its link); None when there
    are no records."""
    if not records:
        return None
    served = sorted({str(v) for r in records if (v := (r.figures or {}).get("engine_version"))})
    version = ", ".join(served) or expected_version or "(version unknown)"
    environment = {
        "matrix": matrix.file,
        "engine": f"{matrix.engine} {version}" + (" (as the servers reported it)" if served else ""),
        "model": matrix.model,
        "GPUs": ", ".join(f"{g['name']} ({g['memory_gib']} GiB, driver {g['driver']})" for g in gpus) or "none seen",
        "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    report = render(matrix.name, list(matrix.feature_names), records, environment, baseline, order, gate, earlier)
    text = redact.text(report.text, secrets)
    if pngs:
        text += "\n## Plots\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n"
    path = out_dir / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return Report(text, redact.text(report.brief, secrets), report.late_failures), path
