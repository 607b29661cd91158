"""Load YAML keeping each value's line number, so errors can point into the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import MatrixError


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
        if isinstance(key, (list, dict)):
            raise MatrixError(
                loader.name, key_node.start_mark.line + 1, "", "a key must be a name, not a list or mapping"
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


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
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicate_keys(shown_as, node, "")
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        # "while parsing a flow sequence" points at the opening bracket: that line is the one to fix
        mark = e.context_mark or e.problem_mark
        line = mark.line + 1 if mark else None
        what = e.problem or ""
        if e.context and e.problem_mark and mark is not e.problem_mark:
            what = f"{e.context}: {e.problem} (line {e.problem_mark.line + 1})"
        elif e.context:
            what = f"{e.context}: {e.problem}"
        raise MatrixError(shown_as, line, "", f"YAML syntax error: {what}") from None
    except yaml.YAMLError as e:
        raise MatrixError(shown_as, None, "", f"YAML error: {e}") from None
    finally:
        loader.dispose()


def _check_duplicate_keys(file: str, node: yaml.Node, path: str) -> None:
    """PyYAML keeps the last of two equal keys silently; a matrix with one is almost always a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            here = f"{path}.{key}" if path else key
            if key in seen:
                raise MatrixError(
                    file, key_node.start_mark.line + 1, here, "duplicate key (YAML would keep only the last one)"
                )
            seen.add(key)
            _check_duplicate_keys(file, value_node, here)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _check_duplicate_keys(file, child, f"{path}[{i}]")


def line_of(container: Any, key: Any) -> int | None:
    """The line of `container[key]` when the loader recorded it, else the container's own line."""
    if isinstance(container, LineDict):
        return container.key_lines.get(key, container.line)
    if isinstance(container, LineList):
        if isinstance(key, int) and 0 <= key < len(container.item_lines):
            return container.item_lines[key]
        return container.line
    return None
