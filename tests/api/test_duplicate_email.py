"""Rows matched by an external id that would give a contact an e-mail another contact has
(issue 20, item 2): `--on-duplicate-email warn|skip|error`, in the file and in the account,
whether or not Insightly's search ignores case."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.test_cli import run, write

MAPPING = (
    "object: contacts\nmatch: {column: SFID, field: External_Id__c}\ncolumns:\n"
    "  SFID: External_Id__c\n  First: FIRST_NAME\n  Last: LAST_NAME\n  Email: EMAIL_ADDRESS\n"
)
FILE = (
    "SFID,First,Last,Email\n"
    "SF-1,Samira,Ivanova,SAMIR.IVANOVA.2001@Example.com\n"  # contact 2001's, in other letters
    "SF-2,Ada,Lovelace,ada@dup.example\n"
    "SF-3,Augusta,King,ada@dup.example\n"  # line 3's address, another Salesforce id
    "EXT-0002001,Samir,Ivanova,samir.ivanova.2001@example.com\n"  # 2001 itself, its own e-mail
)


def _emails(sb, address: str) -> list[int]:
    records = sb.account.collections["Contacts"].records
    return [i for i, r in records.items() if str(r.get("EMAIL_ADDRESS")).lower() == address]


def test_validate_names_rows_of_the_file_that_share_an_e_mail(make_sandbox, tmp_path: Path):
    file = write(tmp_path, "sf.csv", FILE)
    result = run(
        make_sandbox(), "validate", str(file), "--mapping", str(write(tmp_path, "m.yaml", MAPPING))
    )
    assert result.exit_code == 0, result.output
    assert (
        "Warning: 2 row(s) give EMAIL_ADDRESS a value an earlier row of another record gives: "
        "lines 3 and 4 ('ada@dup.example'); 2 and 5 ('SAMIR.IVANOVA.2001@Example.com') "
        "(--on-duplicate-email warn|skip|error says what import does)\n" in result.stderr
    )


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["warn", "skip", "error"])
def test_on_duplicate_email_warns_skips_or_fails_the_rows(make_sandbox, tmp_path: Path, policy):
    sb = make_sandbox()
    before = len(sb.account.collections["Contacts"].ids)
    file = write(tmp_path, "sf.csv", FILE)
    mapping = write(tmp_path, "m.yaml", MAPPING)
    result = run(sb, "import", str(file), "--mapping", str(mapping), "--on-duplicate-email", policy)
    created = len(sb.account.collections["Contacts"].ids) - before
    plan = (tmp_path / "sf.plan.csv").read_text(encoding="utf-8-sig")
    if policy == "warn":
        assert result.exit_code == 0, result.output
        assert created == 3
        assert (
            "Warning: 2 row(s) give EMAIL_ADDRESS a value another record has (action "
            "'duplicate-email' in NAME.plan.csv; sent all the same, as --on-duplicate-email "
            "warn): line 2 'SAMIR.IVANOVA.2001@Example.com' like contact 2001; line 4 "
            "'ada@dup.example' like line 3 of this file" in result.stderr
        )
        assert (
            "\n2,duplicate-email,,EMAIL_ADDRESS,contact 2001,SAMIR.IVANOVA.2001@Example.com,"
            "another record has this value; sent all the same (--on-duplicate-email warn)\n"
        ) in plan
        assert len(_emails(sb, "ada@dup.example")) == 2
    else:
        assert created == 1  # SF-2 only
        assert "duplicate-email" not in plan
        assert len(_emails(sb, "samir.ivanova.2001@example.com")) == 1
        state = "skipped" if policy == "skip" else "failed"
        summary = "0 duplicate, 2 skipped, 0 failed" if policy == "skip" else "0 skipped, 2 failed"
        assert summary in result.stdout, result.output
        assert result.exit_code == (0 if policy == "skip" else 1)
        results = (tmp_path / "sf.errors.csv").read_text(encoding="utf-8-sig")
        assert (
            f"2,{state},,EMAIL_ADDRESS 'SAMIR.IVANOVA.2001@Example.com' already belongs to "
            f"contact 2001; --on-duplicate-email {policy}," in results
        )
        assert (
            f"4,{state},,EMAIL_ADDRESS 'ada@dup.example' already belongs to line 3 of this "
            f"file; --on-duplicate-email {policy}," in results
        )


@pytest.mark.slow
@pytest.mark.parametrize("ignores_case", [False, True])
def test_the_account_check_finds_an_e_mail_in_other_letters_by_search_or_listing(
    make_sandbox, tmp_path: Path, ignores_case: bool
) -> None:
    """1,220 contacts: three listing pages, so one row asks by search where the search
    ignores case, and lists where it does not (it would miss `Samir…@Example.com`)."""
    sb = make_sandbox(generate={"Contacts": 1000}, search_ignores_case=ignores_case)
    file = write(tmp_path, "sf.csv", FILE.splitlines()[0] + "\n" + FILE.splitlines()[1] + "\n")
    result = run(
        sb,
        "import",
        str(file),
        "--mapping",
        str(write(tmp_path, "m.yaml", MAPPING)),
        "--on-duplicate-email",
        "error",
        "--dry-run",
    )
    assert "0 to create, 0 to update" in result.stderr and "1 failed" in result.stderr, (
        result.output
    )
    listed = sum(n for (m, p, s), n in sb.stats.items() if p == "/v3.1/Contacts")
    searched = sum(n for (m, p, s), n in sb.stats.items() if p == "/v3.1/Contacts/Search")
    # planning: a search for SF-1 by its external id finds none; a probe (20 records, and a
    # search for one in other letters) tells whether search ignores case. Where it does, the
    # check reads a first page and searches for the e-mail; where not, planning listed every
    # contact to be sure of SF-1, and the check uses that listing
    assert (listed, searched) == ((2, 3) if ignores_case else (4, 2))


def test_direction_marks_are_no_part_of_an_address_and_a_crowd_is_summed_up(
    make_sandbox, tmp_path: Path
) -> None:
    """Marks that steer the direction of text come along when an address is copied from a
    right-to-left page; a million rows sharing one address make a one-line warning."""
    rows = "".join(f"SF-{n},A,B,\u200ejoao.varga.2004@example.com\u200f\n" for n in range(500))
    file = write(tmp_path, "sf.csv", "SFID,First,Last,Email\n" + rows)
    mapping = write(tmp_path, "m.yaml", MAPPING)
    result = run(make_sandbox(), "validate", str(file), "--mapping", str(mapping))
    warning = next(line for line in result.stderr.splitlines() if "earlier row" in line)
    assert "lines 2 and 3, 4, 5 and 496 more (" in warning and len(warning) < 300
    planned = run(
        make_sandbox(),
        "import",
        str(file),
        "--mapping",
        str(mapping),
        "--dry-run",
        "--on-duplicate-email",
        "error",
    )
    assert "0 to create" in planned.stderr and "500 failed" in planned.stderr, planned.output


def test_error_fails_a_row_insightlys_rule_already_called_a_duplicate(
    make_sandbox, tmp_path: Path
) -> None:
    """Without a match key, a row that is contact 2001 by name and e-mail was only warned of
    (Insightly's duplicate rule); --on-duplicate-email error must still keep it out."""
    sb = make_sandbox()
    existing = sb.account.collections["Contacts"].records[2001]
    file = write(
        tmp_path,
        "p.csv",
        f"First,Last,Email\n{existing['FIRST_NAME']},{existing['LAST_NAME']},"
        f"{existing['EMAIL_ADDRESS']}\n",
    )
    mapping = write(
        tmp_path,
        "m.yaml",
        "object: contacts\ncolumns:\n  First: FIRST_NAME\n  Last: LAST_NAME\n  Email: EMAIL_ADDRESS\n",
    )
    before = len(sb.account.collections["Contacts"].ids)
    result = run(
        sb, "import", str(file), "--mapping", str(mapping), "--on-duplicate-email", "error"
    )
    assert result.exit_code == 1, result.output
    assert len(sb.account.collections["Contacts"].ids) == before
