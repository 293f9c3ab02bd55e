"""Which Insightly account a key is for, as an export folder's manifest and an import's
checkpoint remember it, and how a run's key is told apart from another account's.

ASSUMPTION (docs/api.md §11): `GET /Instance` may be refused to a user without the right to
read the account's settings, while `GET /Users/Me` answers every user, with the account's
number as its `INSTANCE_ID` (the swagger's User shape).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class AccountId:
    """Which account a key is for, as a folder or a checkpoint remembers it: `GET /Instance`'s
    subdomain, and (asked only when that is refused, or to compare with a folder that has
    only it) the number `GET /Users/Me` gives, which every user may read."""

    name: str | None = None
    number: int | None = None

    @classmethod
    def of(cls, name: object, number: object) -> AccountId:
        """As remembered (a hand-edited manifest may hold anything)."""
        if isinstance(number, str) and re.fullmatch(r"-?\d{1,30}", number.strip()):
            number = int(number)
        return cls(
            str(name)[:200] if name else None,
            number if isinstance(number, int) and not isinstance(number, bool) else None,
        )

    @property
    def shown(self) -> str:
        return f"account {self.name!r}" if self.name else f"account number {self.number}"

    def mismatch_with(self, known: AccountId) -> str | None:
        """Why this key is not for `known`'s account, or None. By name where both have one,
        else by number; a key that gives neither that `known` has cannot be told from another
        account's (its files replaced a folder's, its ids were taken for deletions)."""
        if known.name and self.name:
            return None if known.name == self.name else f"this key is for account {self.name!r}"
        if known.number is not None and self.number is not None:
            if known.number == self.number:
                return None
            return f"this key is for account number {self.number}"
        if known.name is None and known.number is None:
            return None  # nothing known yet: a new folder or checkpoint
        if self.name is None and self.number is None:
            return (
                "this key's user may read neither the account's name (GET /Instance) nor its "
                "number (GET /Users/Me), so the key cannot be told from another account's"
            )
        if self.name is None:
            return (
                "this key's user may not read the account's name (GET /Instance was refused), "
                "which is all that is known of it here, so the key cannot be told from another "
                "account's"
            )
        return (
            "GET /Users/Me gave this key no account number, which is all that is known of it "
            "here, so the key cannot be told from another account's"
        )

    def merged_with(self, known: AccountId) -> AccountId:
        """What to remember from now on: what this run learned, else what was known."""
        return AccountId(
            self.name or known.name, self.number if self.number is not None else known.number
        )
