"""The package says what it is: licence, version from one place, typed, where it runs."""

from __future__ import annotations

import tomllib
from importlib.metadata import metadata, version
from pathlib import Path

import insightly_etl

ROOT = Path(__file__).resolve().parents[2]


def test_the_metadata_a_package_index_shows() -> None:
    meta = metadata("insightly-etl")
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert version("insightly-etl") == insightly_etl.__version__  # single-sourced
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert not any("Windows" in c for c in classifiers)  # not yet: the README says why
    # the repository's test and lint tools are a dependency group (PEP 735), not a user extra;
    # the extras are features': Delta tables, the report's charts, the Dagster assets
    assert meta.get_all("Provides-Extra") == ["delta", "report", "dagster"]
    assert (
        "pytest>=8"
        in tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    )
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")[:200]


def test_the_package_is_marked_typed_and_ships_the_marker() -> None:
    assert (Path(insightly_etl.__file__).parent / "py.typed").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = pyproject["tool"]["setuptools"]["package-data"]["insightly_etl"]
    assert "py.typed" in package_data  # into the wheel (tests/e2e/test_package.py looks)
