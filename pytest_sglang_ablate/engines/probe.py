"""Ask the engine's own Python which version it is and whether it accepts each row's flags."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field, replace

from .. import engines
from ..errors import FailureClass, ServerLaunchError
from ..matrix.rows import Ablation, Row

PROBE_TIMEOUT_S = 120  # importing SGLang's server_args takes 2-4 s on a 2-core machine


@dataclass(frozen=True)
class ProbeResult:
    python: str | None
    version: str | None
    validated: bool  # False: flags were not checked; `note` says why
    note: str
    rejected: dict[str, str] = field(default_factory=dict)  # row id -> the parser's message
    warnings: dict[str, list[str]] = field(default_factory=dict)  # row id -> what the parser warned (deprecations)
    checked: frozenset[str] = frozenset()  # the row ids the parser saw
    refused: dict[str, str] = field(default_factory=dict)  # row id -> what the engine's own argument checks raised
    unchecked: dict[str, str] = field(default_factory=dict)  # row id -> why those checks could not finish


def rejection(engine: str, result: ProbeResult, row: Row, file: str) -> str:
    """What a user reads when the engine's parser rejects a row's flags."""
    return (
        f"{engine} {result.version} rejects the flags of row '{row.id}' in {file}: {result.rejected[row.id]}\n"
        f"server command: {' '.join(row.argv)}\n"
        f"Fix the flag in the matrix, or deselect the row (-k 'not [{row.id}]')."
    )


def probe(ablation: Ablation, only: set[str] | None = None) -> ProbeResult:
    """One subprocess for all rows (or the ids in `only`); never raises: a probe that cannot run says so in `note`."""
    matrix = ablation.matrix
    profile = engines.get(matrix.engine)
    python = profile.probe_python(list(matrix.launch))
    if python is None:
        return ProbeResult(
            None, None, False, f"launch is not `<python> -m ...` for {matrix.engine}, so the flags were not validated"
        )
    prefix = len(matrix.launch)
    rows = [{"id": r.id, "argv": list(r.argv[prefix:])} for r in ablation.rows if only is None or r.id in only]
    try:
        done = subprocess.run(
            [python, str(profile.probe_script)],
            input=json.dumps(rows),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except OSError as e:
        return ProbeResult(
            python, None, False, f"cannot run {python} ({e.strerror or e}), so the flags were not validated"
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(
            python, None, False, f"{python} took over {PROBE_TIMEOUT_S} s to load {matrix.engine}; flags not validated"
        )
    try:
        out = json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return ProbeResult(python, None, False, f"the {matrix.engine} probe failed ({tail[0]}); flags not validated")
    version = out.get("version")
    if not out.get("importable"):
        return ProbeResult(python, version, False, f"{out.get('error')}: flags not validated (python: {python})")
    rejected = {k: v for k, v in out.get("results", {}).items() if v}
    warnings = {k: list(v) for k, v in out.get("warnings", {}).items() if v}
    checked = frozenset(str(r["id"]) for r in rows)
    refused = {k: str(v) for k, v in out.get("refused", {}).items() if v}
    unchecked = {k: str(v) for k, v in out.get("unchecked", {}).items() if v}
    note = f"flags validated by {matrix.engine} {version}'s parser"
    return ProbeResult(python, version, True, note, rejected, warnings, checked, refused, unchecked)


def recheck_after_setup(ablation: Ablation, result: ProbeResult) -> ProbeResult:
    """The argument checks again, for the rows whose checks could not finish before the matrix's prepare steps ran
    (SGLang reads the model's config.json there, and a prepare step may be what writes it). Called once, after
    those steps, before the first launch: a refusal found now still costs no GPU time."""
    if not ablation.matrix.prepare or not result.unchecked:
        return result
    again = probe(ablation, only=set(result.unchecked))
    if not again.validated:
        return result
    return replace(result, refused={**result.refused, **again.refused}, unchecked=again.unchecked)


def refusal_error(engine: str, result: ProbeResult, row: Row) -> ServerLaunchError | None:
    """The failure of a row whose flags the engine's own argument checks refused before launch, if they did:
    raised instead of launching, so no GPU time is spent, and a known issue with `match:` can still expect it."""
    refused = result.refused.get(row.id)
    if refused is None:
        return None
    message = (
        f"row '{row.id}': {engine} {result.version} refuses this combination of flags, so it was not launched "
        f"[{FailureClass.BAD_FLAG}]\n"
        f"  evidence: {refused}\n"
        f"  phase: argument check (before launch)\n"
        f"  server command: {' '.join(row.argv)}\n"
        f"  what to do: drop the combination, or record it as a known issue (known_issues with match:)"
    )
    return ServerLaunchError(message, FailureClass.BAD_FLAG, refused, "argument check (before launch)")
