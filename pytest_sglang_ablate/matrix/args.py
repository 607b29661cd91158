"""Server args: a matrix's flag mappings, merged in layers and turned into argv."""

from __future__ import annotations

# A flag's value: True = bare flag; None/False = absent; a tuple = several values after one flag.
ArgValue = bool | int | float | str | tuple[str, ...] | None
# Ordered (flag name without dashes, value) pairs; a tuple so rows stay hashable.
Args = tuple[tuple[str, ArgValue], ...]


def normalize_key(key: str) -> str:
    """`--tp_size`, `tp_size` and `tp-size` are one flag: `tp-size`."""
    return key.lstrip("-").replace("_", "-")


def merge(*layers: Args) -> Args:
    """Later layers win key by key; a later False or None removes the flag."""
    merged: dict[str, ArgValue] = {}
    for layer in layers:
        for key, value in layer:
            merged.pop(key, None)  # re-insert so the argv order follows the layer that set it last
            merged[key] = value
    return tuple((k, v) for k, v in merged.items() if v is not None and v is not False)


def to_argv(args: Args) -> list[str]:
    """`true` -> `--key`; a value -> `--key value`; a list -> `--key v1 v2`."""
    argv: list[str] = []
    for key, value in args:
        if value is None or value is False:
            continue
        argv.append(f"--{key}")
        if value is True:
            continue
        if isinstance(value, tuple):
            argv.extend(value)
        else:
            argv.append(str(value))
    return argv


def lookup(args: Args, *names: str, default: ArgValue = None) -> ArgValue:
    """The value of the first of `names` (aliases of one flag) that is set."""
    found = dict(args)
    for name in names:
        if name in found:
            return found[name]
    return default


def int_value(args: Args, *names: str, default: int = 1) -> int:
    """A count flag's value (`--tp-size 8` -> 8); `default` when it is absent, bare or not a whole number."""
    value = lookup(args, *names)
    if value is None or isinstance(value, (bool, tuple)):
        return default
    try:
        return int(str(value))
    except ValueError:
        return default
