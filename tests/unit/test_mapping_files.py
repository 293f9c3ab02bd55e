"""Hostile mapping files: refused at once, with every problem named, never a traceback or a
runaway allocation."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from insightly_etl.errors import InputError
from insightly_etl.load.mapping import read_mapping

BILLION_LAUGHS = """object: contacts
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
columns: {X: FIRST_NAME}
"""


def refused(tmp_path: Path, content: bytes | str) -> InputError:
    path = tmp_path / "m.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(InputError) as caught:
        read_mapping(path)
    return caught.value


def test_yaml_aliases_are_refused_before_they_expand(tmp_path: Path) -> None:
    tracemalloc.start()
    error = refused(tmp_path, BILLION_LAUGHS)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (
        str(error)
        == f"{tmp_path}/m.yaml, line 3: YAML aliases (*a) are not accepted in a mapping file"
    )
    assert peak < 5 << 20


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, "object: contacts\nx: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert (
        str(error)
        == f"{tmp_path}/m.yaml, line 2: nested more than 20 levels deep; not a mapping file"
    )


def test_a_mapping_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    error = refused(tmp_path, b'object: contacts\ncolumns:\n  A: FIRST_NAME\n  B: "caf\xe9"\n')
    assert str(error) == f"{tmp_path}/m.yaml: not UTF-8 text (byte 51: b'\\xe9')"


def test_every_problem_of_a_mapping_is_reported_at_once(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "object: contacts\ncolumns:\n  A: {field: FIRST_NAME, transform: 5}\n"
        "  B: {field: LAST_NAME, update: maybe}\n  C: {field: TITLE, values: [a, b]}\n"
        "defaults: {BACKGROUND: {nested: dict}, TAGS: [a, b]}\n",
    )
    assert str(error) == (
        f"{tmp_path}/m.yaml: 5 problems:\n"
        "  columns.A.transform: expected a name or a list of names, not 5\n"
        "  columns.B.update: must be one of overwrite, fill, never, not 'maybe'\n"
        "  columns.C.values: expected a map of file value -> Insightly value\n"
        "  defaults.BACKGROUND: expected a single value (text, number, true/false), not a map\n"
        "  defaults.TAGS: expected a single value (text, number, true/false), not a list"
    )


def test_a_lookup_to_an_object_without_numeric_ids_is_a_mapping_error(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "object: organisations\ncolumns:\n  Country: {field: ADDRESS_BILLING_COUNTRY, lookup: {object: countries}}\n",
    )
    assert str(error) == (
        f"{tmp_path}/m.yaml: columns.Country.lookup.object: countries have no numeric record ids "
        "to look up; map the value itself instead"
    )


def test_a_column_name_written_by_yaml_reads_back_as_that_name(tmp_path: Path) -> None:
    """What `mapping draft` writes (PyYAML's safe_dump, YAML 1.1 quoting) reads back as the
    same text: the loader never takes a plain word for a number or a boolean that safe_dump
    would leave unquoted (a column `1e3` was read as the float 1000.0)."""
    import yaml

    from insightly_etl.yamlfile import read_yaml

    names = ["1e3", "1.5e3", "NO", "yes", "on", "01067", "12:30:00", "1_000", "2024-01-01"]
    names += ["~", "null", "true", "0x1F", "+5", "-0", ".inf", "0o17", "1.", "Zoë"]
    path = tmp_path / "k.yaml"
    path.write_text(
        yaml.safe_dump(dict.fromkeys(names, "FIELD"), allow_unicode=True, sort_keys=False)
    )
    assert list(read_yaml(path, "a mapping")) == names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "object: contacts\ncolumns:\n  A: FIRST_NAME\nvalues:\n  null: a\n  ~: b\n",
            "lines 5 and 6: the key '~' is given twice",
        ),
        (
            "object: contacts\ncolumns:\n  1: FIRST_NAME\n  1.0: LAST_NAME\n",
            "lines 3 and 4: the key '1.0' is given twice",
        ),
        (
            "object: contacts\ncolumns:\n  true: FIRST_NAME\n  True: LAST_NAME\n",
            "lines 3 and 4: the key 'True' is given twice",
        ),
        (
            "object: contacts\ncolumns:\n  A: {field: FIRST_NAME, values: {Ada: !!timestamp 2024-01-01}}\n",
            "line 3: YAML tags (tag:yaml.org,2002:timestamp) are not accepted in a mapping file",
        ),
    ],
)
def test_keys_that_load_alike_and_tagged_values_are_refused_naming_the_lines(
    tmp_path: Path, text: str, message: str
) -> None:
    """The last of two keys that load as one won silently; `!!timestamp` sent 2024-01-01."""
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as refused:
        read_mapping(path)
    assert str(refused.value) == f"{path}, {message}"


def test_a_mapping_that_is_a_device_or_a_pipe_is_refused_without_reading_it(tmp_path: Path) -> None:
    """--mapping /dev/zero read until memory ran out; a pipe blocked for ever."""
    import os

    fifo = tmp_path / "m.fifo"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):
        with pytest.raises(InputError) as refused:
            read_mapping(path)
        assert str(refused.value) == f"{path}: not a regular file, so not a mapping file"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("{n/a: null}", "columns.T.values: 'n/a': None has no text on one side"),
        ('{"1": One, 1: Uno}', "columns.T.values: the file value '1' is given twice"),
    ],
)
def test_values_that_would_be_read_wrong_are_refused(
    tmp_path: Path, values: str, message: str
) -> None:
    """`n/a: null` sent the text "None"; `"1"` and `1` kept the last silently."""
    path = tmp_path / "m.yaml"
    path.write_text(f"object: contacts\ncolumns:\n  T: {{field: TITLE, values: {values}}}\n")
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        read_mapping(path)


def test_a_plus_sign_keeps_a_value_text(tmp_path: Path) -> None:
    """`+4930123456` as a default was the number 4930123456: the phone lost its `+`."""
    path = tmp_path / "m.yaml"
    path.write_text(
        "object: contacts\ncolumns:\n  T: {field: TITLE, values: {x: +44}}\n"
        "defaults: {PHONE: +4930123456}\n"
    )
    mapping = read_mapping(path)
    assert mapping.columns[0].values == {"x": "+44"}
    assert mapping.defaults == {"PHONE": "+4930123456"}


def test_a_key_whose_parts_ask_for_different_comparisons_is_refused(tmp_path: Path) -> None:
    """`compare:` applies to the whole key: given differently on two parts, the last one
    silently won (BJÖRN and Björn one key or two, by the order of the parts)."""
    path = tmp_path / "m.yaml"
    path.write_text(
        "object: contacts\n"
        "match:\n"
        "  - {column: First Name, field: FIRST_NAME, compare: casefold}\n"
        "  - {column: Last Name, field: LAST_NAME, compare: exact}\n"
        "columns: {First Name: FIRST_NAME, Last Name: LAST_NAME}\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as refused:
        read_mapping(path)
    assert str(refused.value) == (
        f"{path}: match.compare: 'exact' for 'Last Name', but 'casefold' for another part of "
        "the key; compare applies to the whole key"
    )
    assert refused.value.hint == "Give compare: once, or the same on every part."
    path.write_text(path.read_text().replace("compare: exact", "compare: casefold"))
    assert read_mapping(path).match.compare == "casefold"  # the same on each: as once


def test_an_integer_of_thousands_of_digits_is_an_input_error(tmp_path: Path) -> None:
    """`defaults: {OWNER_USER_ID: 999…9}` (5,000 digits) stopped with an internal error."""
    path = tmp_path / "m.yaml"
    path.write_text(f"object: contacts\ndefaults:\n  OWNER_USER_ID: {'9' * 5000}\n")
    with pytest.raises(InputError, match=rf"^{path}: a value that is too large to read \("):
        read_mapping(path)
