"""Load YAML keeping each value's line number, so errors can point into the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import MatrixError


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers its own line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A YAML sequence that remembers its own line and the line of each item."""

    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise MatrixError(
                loader.name, key_node.start_mark.line + 1, str(key), "duplicate key (YAML keeps only the last one)"
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)  # type: ignore[arg-type]
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)  # type: ignore[arg-type]


def load(path: Path, shown_as: str) -> Any:
    """Parse `path`; errors name the file as `shown_as` (the path the user typed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MatrixError(shown_as, None, "", "no such file (expected a matrix YAML file)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise MatrixError(shown_as, None, "", f"cannot read the file: {e}") from None
    loader = _Loader(text)
    loader.name = shown_as
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(str(p) for p in (e.context, e.problem) if p)
        raise MatrixError(shown_as, line, "", f"YAML syntax error: {what}") from None
    except yaml.YAMLError as e:
        raise MatrixError(shown_as, None, "", f"YAML error: {e}") from None
    finally:
        loader.dispose()


def line_of(container: Any, key: Any) -> int | None:
    """The line of `container[key]` when the loader recorded it, else the container's own line."""
    if isinstance(container, LineDict):
        return container.key_lines.get(key, container.line)
    if isinstance(container, LineList):
        if isinstance(key, int) and 0 <= key < len(container.item_lines):
            return container.item_lines[key]
        return container.line
    return None
