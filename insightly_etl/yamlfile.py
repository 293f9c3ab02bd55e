"""Reading the YAML files people write (mappings, accounts.yaml) as hostile input: a size cap,
no aliases ('billion laughs'), no deep nesting, no key written twice; errors name the file and
the line. PyYAML is imported here and in nothing else that reads such a file.

Plain words stay the text they are written as. PyYAML follows YAML 1.1, where `NO` (Norway's
country code), `yes`, `on` and `off` are booleans, `01067` (a Dresden postcode) is the octal
number 567, `12:30:00` is 45000 and `2024-01-01` a date: a mapping's `values: {Norge: NO}`
sent `False`. Here, as in YAML 1.2's core schema, only true/false are booleans, and only
numbers written as numbers (no leading zero, no `_`, no base-60, no `+`: `+44…` is a phone
number; a float with its point) are numbers."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import yaml

from insightly_etl.errors import InputError

MAX_BYTES = 1 << 20
MAX_DEPTH = 20  # a mapping nests three or four levels; deeper is not one of our files


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core's plain scalars (the module's docstring says why)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _pattern, _first in (
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    # no leading `+`: `+4930123456` is a phone number, and a number would lose its `+`
    ("int", r"-?(?:0|[1-9][0-9]*)", "-0123456789"),
    # a point always, an exponent only with its sign: every float here is one under YAML 1.1
    # too, so what safe_dump (1.1) writes unquoted, such as a key `1e3`, reads back as text
    (
        "float",
        r"-?(?:0|[1-9][0-9]*)\.[0-9]*(?:[eE][-+][0-9]+)?|-?\.[0-9]+"
        r"|-?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        "-0123456789.",
    ),
):
    _Loader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), list(_first)
    )


def read_yaml(path: Path, kind: str) -> Any:
    """The data of a YAML file that is `kind` ("a mapping", "an accounts file")."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a pipe would block, /dev/zero never end
            raise InputError(f"{path}: not a regular file, so not {kind} file")
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise InputError(f"{path}: over {MAX_BYTES:,} bytes; {kind} file is at most 1 MB")
        text = raw.decode("utf-8-sig")
        _check_shape(path, text, kind)
        try:
            return yaml.load(text, Loader=_Loader)  # a SafeLoader: no object is built
        except ValueError as exc:  # a value YAML cannot build: an integer of 5,000 digits
            raise InputError(
                f"{path}: a value that is too large to read ({str(exc)[:80]})"
            ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})",
            hint="Save it as UTF-8.",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None


def _check_shape(path: Path, text: str, kind: str) -> None:
    """Refuse, before building anything, YAML that could exhaust memory or the stack: aliases
    (`*name`; nested ones expand exponentially, 'billion laughs') and deep nesting."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise InputError(
                f"{path}, line {line}: YAML aliases (*{event.anchor}) are not accepted in "
                f"{kind} file",
                hint="Write the value out where it is used.",
            )
        tag = getattr(event, "tag", None)
        if tag is not None and isinstance(event, yaml.NodeEvent):
            # `!!timestamp 2024-01-01`, `!!binary …`: a value built by a tag is no plain word
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise InputError(
                f"{path}, line {line}: YAML tags ({tag}) are not accepted in {kind} file",
                hint="Write the value as plain text, in quotes if need be.",
            )
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise InputError(
                    f"{path}, line {line}: nested more than {MAX_DEPTH} levels deep; not {kind} "
                    "file"
                )
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1
    _check_duplicate_keys(path, yaml.compose(text, Loader=_Loader))


def _key(node: yaml.ScalarNode) -> Any:
    """A key as the loader builds it: `~` and `null`, `1` and `+1`, `true` and `True` are
    one key each, and the last would win silently."""
    return yaml.load(yaml.serialize(node), Loader=_Loader)


def _check_duplicate_keys(path: Path, node: yaml.Node | None) -> None:
    """A key written twice at one level: YAML keeps the last silently; we refuse it, naming
    both lines (which one was meant is the person's call)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode):
                name = _key(key)
                if name in seen:
                    raise InputError(
                        f"{path}, lines {seen[name]} and {line}: the key {key.value!r} is given "
                        "twice",
                        hint="Keep one of them.",
                    )
                seen[name] = line
            _check_duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(path, item)
