"""`accounts.yaml`: several Insightly accounts (an agency's clients), each with its own key,
pod or URL, reserve, objects and rate cap. Keys come from an environment variable or a file,
never from the YAML itself: the file is meant to be committed beside a Makefile.

    accounts:
      - name: acme
        pod: na1                      # or url: https://…/v3.1/
        key_env: ACME_INSIGHTLY_KEY   # or key_file: keys/acme.key (beside accounts.yaml)
        reserve: 500
        objects: [contacts, leads]    # optional (default: every object type)
        rate: 5                       # optional: requests/second cap for this account
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insightly_etl.config import (
    Settings,
    check_base_url,
    load_settings,
    looks_like_key,
    pod_url,
    read_key_file,
)
from insightly_etl.errors import ConfigError, InputError
from insightly_etl.yamlfile import read_yaml

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # a folder name: account=<name>/
_KEYS = {"name", "pod", "url", "key_env", "key_file", "reserve", "objects", "rate"}
_INLINE = {"key", "api_key", "apikey", "password", "token", "secret"}


@dataclass(frozen=True)
class AccountEntry:
    name: str
    pod: str | None = None
    url: str | None = None
    key_env: str | None = None
    key_file: Path | None = None
    reserve: int = 0
    objects: tuple[str, ...] = ()  # empty: every object type
    rate: float | None = None  # requests/second cap; None: the command's --rate-limit

    @property
    def key_hint(self) -> str:
        """KEY_HINT in this file's words: its key and pod come from the entry, not --pod."""
        where = f"${self.key_env}" if self.key_env else str(self.key_file)
        return (
            f"Find the account's API key in Insightly under User Settings → API and put it in "
            f"{where}; the pod shown there must match the entry's pod: or url:."
        )

    def settings(self, environ: dict[str, str] | None = None) -> Settings:
        """Its key (read now, from the variable or the file) and base URL."""
        env = os.environ if environ is None else environ
        if self.key_env:
            key = env.get(self.key_env, "").strip()
            if not key:
                state = "is empty" if self.key_env in env else "is not set"
                raise ConfigError(
                    f"account {self.name!r}: the environment variable {self.key_env} {state}",
                    hint=self.key_hint,
                )
        else:
            assert self.key_file is not None
            key = read_key_file(self.key_file)
        return load_settings(api_key=key, pod=self.pod or "na1", api_url=self.url, environ={})


def read_accounts(path: Path) -> list[AccountEntry]:
    """Every entry of an accounts file, checked: a mistake names the file, the entry and the
    key; nothing is read from the network or the key files yet."""
    data = read_yaml(path, "an accounts")
    if not isinstance(data, dict) or set(data) != {"accounts"}:
        raise InputError(f"{path}: expected one key, accounts:, holding a list of accounts")
    entries = data["accounts"]
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: accounts: is empty or not a list")
    result: list[AccountEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(entries, 1):
        entry = _entry(path, i, raw)
        if entry.name.lower() in seen:  # Acme and acme: one folder on macOS and Windows
            raise InputError(f"{path}: the account name {entry.name!r} is given twice")
        seen.add(entry.name.lower())
        result.append(entry)
    return result


def pick(entries: list[AccountEntry], name: str, path: Path) -> AccountEntry:
    for entry in entries:
        if entry.name == name:
            return entry
    raise InputError(
        f"{path}: no account named {name!r}",
        hint="Accounts there: " + ", ".join(e.name for e in entries),
    )


def _entry(path: Path, i: int, raw: Any) -> AccountEntry:
    where = f"{path}, account {i}"
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected name:, pod: or url:, key_env: or key_file:")
    for label, value in raw.items():  # a key pasted into another field: never echoed
        values = value if isinstance(value, list) else [value]
        # a name or an object is an identifier (acme-20241130-production): only a GUID, the
        # form Insightly's keys take, is taken for a key there
        guid = label in ("name", "objects")
        if label not in ("key_env", "key_file") and any(
            isinstance(v, str) and looks_like_key(v, guid_only=guid) for v in values
        ):
            raise InputError(
                f"{where}: {str(label)[:40]}: looks like an API key, which is never written here",
                hint="Put the key in an environment variable (key_env: NAME) or a file of "
                "its own (key_file: PATH).",
            )
    name = raw.get("name")
    if name is None:
        raise InputError(f"{where}: name: is missing (it names the folder account=<name>/)")
    if not isinstance(name, str):  # `name: 123` is a number in YAML
        raise InputError(
            f'{where}: name: {name!r} is not text; quote it (name: "{name}")',
        )
    if not NAME.fullmatch(name):
        raise InputError(
            f"{where}: name: {str(name)!r} must begin with a letter or digit, then letters, "
            "digits, '.', '_' or '-' (it names the folder account=<name>/)"
        )
    where = f"{path}, account {name!r}"
    inline = _INLINE & {str(k).lower() for k in raw}
    if inline:
        raise InputError(
            f"{where}: a key written in the file ({sorted(inline)[0]}:) is refused",
            hint="Put it in an environment variable (key_env: NAME) or a file of its own "
            "(key_file: PATH), so accounts.yaml holds no secret.",
        )
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(_KEYS))}")
    given = [k for k in ("key_env", "key_file") if raw.get(k) is not None]  # `key_env: ~`
    if len(given) != 1:
        raise InputError(f"{where}: give one of key_env: (a variable) or key_file: (a file)")
    if "pod" in raw and "url" in raw:
        raise InputError(f"{where}: give pod: or url:, not both")
    key_env, key_file = raw.get("key_env"), raw.get("key_file")
    for label, value in (("key_env", key_env), ("key_file", key_file)):
        if isinstance(value, str) and looks_like_key(value, path=label == "key_file"):  # unsaid
            raise InputError(
                f"{where}: {label}: looks like an API key itself, not "
                + ("a variable's name" if label == "key_env" else "a file's path"),
                hint="Put the key in an environment variable (or a file of its own) and give "
                "its name (or path) here.",
            )
    if key_env is not None and not (
        isinstance(key_env, str) and re.fullmatch(r"[A-Za-z_]\w*", key_env, re.ASCII)
    ):
        raise InputError(
            f"{where}: key_env: expected an environment variable's name (letters, digits, _)"
        )
    if key_file is not None:
        if not isinstance(key_file, str) or not key_file.strip():
            raise InputError(f"{where}: key_file: expected a path")
        key_file = path.parent / Path(key_file).expanduser()  # relative to accounts.yaml
    try:
        pod = str(raw["pod"]) if "pod" in raw else None
        if pod is not None:
            pod_url(pod)
        url = check_base_url(str(raw["url"])) if "url" in raw else None
    except ConfigError as exc:
        raise InputError(f"{where}: {exc}", hint=exc.hint) from None
    reserve = raw.get("reserve", 0)
    if not isinstance(reserve, int) or isinstance(reserve, bool) or reserve < 0:
        raise InputError(f"{where}: reserve: {reserve!r} must be a whole number, 0 or more")
    rate = raw.get("rate")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.1 <= rate <= 100
    ):
        raise InputError(f"{where}: rate: {rate!r} must be requests/second from 0.1 to 100")
    objects = raw.get("objects", [])
    if isinstance(objects, str):
        objects = [o.strip() for o in objects.split(",") if o.strip()]
    if not isinstance(objects, list) or not all(isinstance(o, str) for o in objects):
        raise InputError(f"{where}: objects: expected a list of object types")
    return AccountEntry(
        name=name,
        pod=pod,
        url=url,
        key_env=key_env,
        key_file=key_file,
        reserve=reserve,
        objects=tuple(objects),
        rate=float(rate) if rate is not None else None,
    )
