"""Everything decided before collection: the matrix, its rows for the engine version, and the flag check."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..engines.probe import ProbeResult, probe
from .parse import load_matrix
from .rows import Ablation, expand


@dataclass(frozen=True)
class Prepared:
    ablation: Ablation
    probe: ProbeResult
    version: str | None
    version_source: str  # "--ablate-sglang-version", "installed for /venv/bin/python", or "" when unknown


def prepare(path: Path, shown: str, version: str | None, version_source: str, launches: int | None = None) -> Prepared:
    """Load, expand, and check every row's flags with the engine's parser; raises MatrixError on bad input.

    Without a given version, the installed one (found by the same probe) decides which known issues apply,
    which can change the rows (`exclude_known_issues`): rows the first probe did not see are probed too.
    """
    matrix = load_matrix(path, shown)
    ablation = expand(matrix, version, launches)
    result = probe(ablation)
    if version is None and result.version:
        version, version_source = result.version, f"installed for {result.python}"
        ablation = expand(matrix, version, launches)
        unseen = {r.id for r in ablation.rows} - result.checked
        if result.validated and unseen:
            more = probe(ablation, only=unseen)
            result = replace(
                result,
                rejected={**result.rejected, **more.rejected},
                warnings={**result.warnings, **more.warnings},
                checked=result.checked | more.checked,
                refused={**result.refused, **more.refused},
                unchecked={**result.unchecked, **more.unchecked},
            )
    return Prepared(ablation, result, version, version_source)
