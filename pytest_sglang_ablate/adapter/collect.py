"""Part of the pytest adapter: the matrix file as a test module, and the marks each case gets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from .state import STATE

if TYPE_CHECKING:
    from ..matrix.rows import Row


class MatrixFile(pytest.Module):
    """The matrix YAML file, collected as the module of the built-in workload tests (adapter/builtin_tests.py).

    `_getobj` is pytest's (private) hook for a module's object; pytest 9 is pinned in pyproject.toml."""

    def _getobj(self) -> Any:
        from . import builtin_tests

        return builtin_tests

    def istestfunction(self, obj: object, name: str) -> bool:
        # a workload kind with no cases in this matrix has no test function (not an empty parametrization)
        kinds = {c.workload.kind for c in self.config.stash[STATE].prepared.ablation.cases}
        return getattr(obj, "workload_kind", None) in kinds

    def istestclass(self, obj: object, name: str) -> bool:
        return False


def marks(row: Row, xfail: str | None, expected: tuple[type[BaseException], ...], xdist: bool) -> list[Any]:
    marks = [getattr(pytest.mark, f) for f in row.features]
    if xdist:  # with --dist loadgroup the cases of a row's launch stay on one worker: one server each
        marks.append(pytest.mark.xdist_group(row.id + row.launch_suffix))
    if xfail:  # a known issue expects the server to fail; a wrong answer or an assertion still fails the case
        marks.append(pytest.mark.xfail(reason=xfail, raises=expected, strict=True))
    return marks
