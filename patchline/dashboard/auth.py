"""The dashboard's login: HTTP Basic against an auth file of PBKDF2-SHA256 password hashes.

An auth file holds one user a line, `name:pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`
(`#` starts a comment). `patchline dashboard --auth-file FILE --add-user NAME` appends one.
Passwords never appear in the file; a checked password is remembered (as its SHA-256, in memory)
so that the page's many requests do not each pay for PBKDF2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import re
from pathlib import Path

from patchline.errors import ConfigError

ITERATIONS = 200_000
_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_LINE = re.compile(r"^([A-Za-z0-9_.@-]{1,64}):pbkdf2_sha256\$(\d{4,8})\$([0-9a-f]{16,128})\$([0-9a-f]{64})$")
MAX_AUTH_FILE_BYTES = 1024 * 1024


def hash_password(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """`pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>` of `password` with a fresh 16-byte salt."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def load_auth_file(path: Path, need_users: bool = True) -> dict[str, tuple[int, bytes, bytes]]:
    """{user: (iterations, salt, hash)} from an auth file; ConfigError naming the line otherwise
    (also when it names no user, unless not `need_users`)."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > MAX_AUTH_FILE_BYTES:
            raise ConfigError(f"--auth-file {path} is not a regular file of at most {MAX_AUTH_FILE_BYTES} bytes.")
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--auth-file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}.") from None
    users = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigError(f"--auth-file {path} line {number} is not 'user:pbkdf2_sha256$iterations$salt$hash' "
                              "(write it with `patchline dashboard --auth-file FILE --add-user NAME`).")
        users[match[1]] = (int(match[2]), bytes.fromhex(match[3]), bytes.fromhex(match[4]))
    if not users and need_users:
        raise ConfigError(f"--auth-file {path} names no user; add one with --add-user NAME.")
    return users


def add_user(path: Path, user: str, password: str) -> None:
    """Append (or replace) `user` in the auth file with a fresh hash of `password`; the file is made 0600."""
    if not _USER.match(user or ""):
        raise ConfigError(f"user name {user!r} is not allowed: 1-64 letters, digits, '_', '.', '@' or '-'.")
    if len(password) < 8:
        raise ConfigError("the password must have at least 8 characters.")
    path = Path(path)
    kept = []
    if path.exists():
        load_auth_file(path, need_users=False)  # refuse to extend a damaged file
        kept = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith(f"{user}:")]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(kept + [f"{user}:{hash_password(password)}"]) + "\n")


class BasicAuth:
    """Checks `Authorization: Basic …` headers against an auth file's users."""

    def __init__(self, users: dict[str, tuple[int, bytes, bytes]]):
        self.users = users
        self._checked: set[tuple[str, bytes]] = set()  # (user, SHA-256 of a password that matched)

    def allows(self, header: str | None) -> bool:
        """True when `header` carries a user of the file and that user's password."""
        if not header or not header.startswith("Basic ") or len(header) > 1024:
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.checks(user, password)

    def checks(self, user: str, password: str) -> bool:
        """True when `user` is in the file and `password` is that user's (a matched pair is remembered,
        as the password's SHA-256, so that repeated logins do not each pay for PBKDF2)."""
        known = self.users.get(user)
        if known is None or len(password) > 1024:
            return False
        remembered = (user, hashlib.sha256(password.encode()).digest())
        if remembered in self._checked:
            return True
        iterations, salt, expected = known
        ok = hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations), expected)
        if ok and len(self._checked) < 1024:
            self._checked.add(remembered)
        return ok


def is_loopback(host: str) -> bool:
    """True when `host` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
