"""Connection settings: API key, pod or base URL. From the environment or explicit values; no click.

The key is held in a `Secret`, whose str/repr never show it, so it cannot leak into a log line,
an exception message or a file by accident. A server or proxy may still echo it back (the
`Authorization: Basic …` header in an error page): every text that came from outside goes
through `redact`, which blanks each key this process knows, raw and in its Basic form.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from insightly_etl.errors import KEY_HINT, ConfigError

log = logging.getLogger("insightly_etl.config")

ENV_KEY = "INSIGHTLY_API_KEY"
ENV_POD = "INSIGHTLY_POD"
ENV_URL = "INSIGHTLY_API_URL"
DEFAULT_POD = "na1"
_POD_RE = re.compile(r"^[a-z]{2,4}[0-9]{1,2}$")


PUBLIC_KEYS = frozenset({"sandbox"})  # `insightly-etl sandbox`'s default key (README)
_KNOWN_SECRETS: set[str] = set()  # every key this process holds, and its encoded forms
REDACTED = "***"


def known_secrets() -> list[str]:
    """Every key this process holds and its encoded forms, longest first (a padded base64
    form before its unpadded prefix)."""
    return sorted(_KNOWN_SECRETS, key=len, reverse=True)


def redact(text: str) -> str:
    """The text with every known key (raw, `key:` in base64, URL-safe base64) blanked out."""
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


# control characters (C0, DEL, C1) and the bidirectional overrides: in a server's text they
# would clear a terminal, write to its clipboard (OSC 52), or print a line of their own
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BREAKS = re.compile("[\t\n\r]+")


def printable(text: str) -> str:
    """A server's text fit to print on one line of a terminal or a file people read: tabs and
    line breaks as a space (no line of its own), each other control character as U+FFFD."""
    return _UNPRINTABLE.sub("\ufffd", _BREAKS.sub(" ", text))


def remember_secret(value: str) -> None:
    """Blank `value` (a key) and its encoded forms out of any text passed to `redact` from now
    on. A shorter 'key' would blank out ordinary words; the local sandbox's documented key is
    public, and a word: blanking it made the seed's account "northwind-***"."""
    if len(value) >= 4 and value not in PUBLIC_KEYS:
        for form in (f"{value}:".encode(), value.encode()):
            for encoded in (base64.b64encode(form), base64.urlsafe_b64encode(form)):
                _KNOWN_SECRETS.add(encoded.decode())  # longest first in redact: padded
                _KNOWN_SECRETS.add(encoded.decode().rstrip("="))
        # `key:password` in base64: the groups of three bytes that are the key's alone
        whole = len(value) // 3 * 3
        if whole >= 12:
            _KNOWN_SECRETS.add(base64.b64encode(value[:whole].encode()).decode())
        # the key as a server may echo it: other case, URL-encoded, in hex
        for text in (value, value.lower(), value.upper()):
            every = "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in text)
            _KNOWN_SECRETS.update(
                (text, quote(text, safe=""), every, every.lower(), text.encode().hex())
            )
        _KNOWN_SECRETS.add(value.encode().hex().upper())
        # the key without its punctuation: a GUID as .NET may write it back
        # (Guid.ToString("N")), or any key a server echoes normalised
        bare = "".join(c for c in value if c.isalnum())
        if bare != value and len(bare) >= 16:
            _KNOWN_SECRETS.update((bare, bare.lower(), bare.upper()))


class Secret:
    """A string that prints as `***`, and is blanked out of any text passed to `redact`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        remember_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    api_key: Secret
    base_url: str  # always ends with "/", e.g. https://api.na1.insightly.com/v3.1/


def looks_like_key(text: str, *, path: bool = False, guid_only: bool = False) -> bool:
    """A GUID, or a long run of letters and many digits: what an API key looks like, not a
    variable's name (ACME_INSIGHTLY_KEY) or a path (keys/acme.key). `path`: the text was
    given as a file's path, and one with a folder in it (/run/secrets/insightly_2024_11_30) is
    a path: no key holds a folder's separator."""
    text = text.strip()
    if path and ("/" in text or "\\" in text):
        return False
    guid = re.fullmatch(
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", text
    )
    if guid_only:
        return bool(guid)
    digits = sum(c.isdigit() for c in text)
    return bool(guid) or (
        len(text) >= 20 and digits >= 6 and re.fullmatch(r"[A-Za-z0-9+/=_-]+", text) is not None
    )


def pod_url(pod: str) -> str:
    """`na1` -> `https://api.na1.insightly.com/v3.1/` (the pod is shown beside the key)."""
    if looks_like_key(pod):  # never echoed: it may be the key, pasted in the wrong place
        raise ConfigError(
            "invalid pod: it looks like an API key, not a pod's name like na1 or eu1",
            hint="The pod is shown in Insightly under User Settings → API, next to the key.",
        )
    pod = pod.strip().lower()
    if not _POD_RE.match(pod):
        raise ConfigError(
            f"invalid pod {pod!r}: expected a name like na1 or eu1",
            hint="The pod is shown in Insightly under User Settings → API, next to the key.",
        )
    return f"https://api.{pod}.insightly.com/v3.1/"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """Normalise a base URL and refuse ones that would expose the key."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = "(it looks like an API key)" if looks_like_key(url) else repr(url)
        raise ConfigError(f"invalid API URL {shown}: expected https://host/v3.1/")
    if parts.username or parts.password:
        raise ConfigError("the API URL must not contain credentials; set INSIGHTLY_API_KEY")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing to send the API key over plain http to {parts.hostname}",
            hint="Use https://, or http:// only for a sandbox on a loopback address.",
        )
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    # the URL meant: no query or fragment (sent with, and breaking, every request), and the
    # path up to a version in it (…/v3.1/Contacts), or with /v3.1/ for a last segment /vN/
    version = re.search(r"/(v\d+(\.\d+)?)/", path, re.IGNORECASE)
    last = version is not None and version.end() == len(path)
    cut = version is not None and (last or version.group(1).lower().startswith("v3."))
    meant = (
        urlunsplit(
            parts._replace(
                path=path[: version.start()] if cut and version else path, query="", fragment=""
            )
        ).rstrip("/")
        + "/v3.1/"
    )
    if "?" in url or "#" in url:
        raise ConfigError(
            f"the API URL {url} has a query or a fragment (?…, #…): a base URL has none",
            hint=f"Did you mean {meant} ?",
        )
    url = url if url.endswith("/") else url + "/"
    if not re.search(r"/v3\.\d+/$", path):
        other = last and version is not None and not version.group(1).lower().startswith("v3.")
        raise ConfigError(
            f"the API URL {url} is of API version {version.group(1)}; this tool speaks v3.1"
            if other and version
            else f"the API URL {url} does not end in a version such as /v3.1/",
            hint=f"Did you mean {meant} ? (Insightly's base URL is https://api.POD.insightly.com/v3.1/.)",
        )
    return url


MAX_KEY_FILE = 4096  # a key is a few dozen characters: a bigger file is not a key file


def read_key_file(path: Path) -> str:
    """The key in a file of its own: a regular file (not a pipe or a device that would block
    or never end), of at most 4 KiB."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"the API key file {path} is not a regular file", hint=KEY_HINT)
        if info.st_size > MAX_KEY_FILE:
            raise ConfigError(
                f"the API key file {path} holds {info.st_size:,} bytes: not a key", hint=KEY_HINT
            )
        key = path.read_text("utf-8-sig").strip()  # Notepad saves UTF-8 with a mark first
    except OSError as exc:
        if looks_like_key(str(path), path=True):  # the key itself given as the file: unsaid
            raise ConfigError(
                "cannot read the API key file: its path looks like an API key itself, not a "
                "file's path",
                hint="Put the key in a file of its own and give that file's path.",
            ) from None
        raise ConfigError(f"cannot read the API key file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:  # no key: it names no file, nor says to give an --encoding
        raise ConfigError(
            f"the API key file {path} is not UTF-8 text: not a key", hint=KEY_HINT
        ) from None
    if os.name == "posix" and info.st_mode & 0o077:  # as ssh says of a private key
        log.warning(
            "the API key file %s can be read or changed by other users of this machine "
            "(mode %03o); `chmod 600 %s` keeps it yours",
            path,
            stat.S_IMODE(info.st_mode),
            path,
        )
    if not key:
        raise ConfigError(f"the API key file {path} is empty", hint=KEY_HINT)
    return key


def load_settings(
    *,
    api_key: str | None = None,
    api_key_file: Path | None = None,
    pod: str | None = None,
    api_url: str | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Explicit values win over the environment; a URL wins over a pod."""
    env = os.environ if environ is None else environ
    for known in (api_key, env.get(ENV_KEY)):  # blanked out of every error below: a key
        if known and known.strip():  # pasted as the pod, the URL or the key file's path
            remember_secret(known.strip())
    key = api_key or (read_key_file(api_key_file) if api_key_file else None) or env.get(ENV_KEY)
    if not key or not key.strip():
        raise ConfigError(
            f"no Insightly API key: set {ENV_KEY} or pass --api-key-file", hint=KEY_HINT
        )
    secret = Secret(key.strip())  # the key file's too, before the pod and the URL are checked
    url = api_url or env.get(ENV_URL)
    base = check_base_url(url) if url else pod_url(pod or env.get(ENV_POD) or DEFAULT_POD)
    return Settings(api_key=secret, base_url=base)
