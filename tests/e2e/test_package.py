"""The package as a pip user gets it: built (sdist, then the wheel from the sdist), checked by
twine, installed into a fresh virtualenv outside the repository, then the README's pip path —
`insightly-etl examples`, an export and an import against `--sandbox` — run from there."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*cmd: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout + done.stderr


def test_the_wheel_installs_outside_the_repository_and_the_readme_pip_path_works(
    tmp_path: Path,
) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT, cwd=tmp_path)
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    assert "PASSED" in run(sys.executable, "-m", "twine", "check", wheel, sdist, cwd=tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "insightly_etl/examples/mappings/contacts.yaml" in names
    assert "insightly_etl/examples/makefiles/migration.mk" in names
    assert "insightly_etl/py.typed" in names
    assert "insightly_etl/examples/makefiles/agency.mk" in names
    assert "insightly_etl/examples/makefiles/agency.yaml" in names
    for shape in ("summary", "status", "log-line"):
        assert f"insightly_etl/schemas/{shape}.schema.json" in names
    assert not any("sample_data/sandbox" in n for n in names)  # the seed is built in
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    assert any(m.endswith("tests/data/checkpoints/v0-contacts.sqlite") for m in members)
    assert any(m.endswith("tests/api/test_import.py") for m in members)

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "pip", "install", "--quiet", wheel, cwd=tmp_path)
    etl = venv / "bin" / "insightly-etl"
    run(etl, "examples", "demo", cwd=tmp_path)
    demo = tmp_path / "demo"
    assert (demo / "sample_data" / "contacts.csv").is_file()
    run(etl, "export", "--sandbox", "--out", "exports/", "--quiet", cwd=demo)
    assert (demo / "exports" / "contacts.parquet").is_file()
    imported = run(
        etl,
        "import",
        "sample_data/contacts.csv",
        "--mapping",
        "mappings/contacts.yaml",
        "--sandbox",
        "--quiet",
        cwd=demo,
    )
    assert "contacts.csv -> contacts: 8 created" in imported
