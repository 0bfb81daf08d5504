"""The password file of `sqlext serve --auth password`, and `sqlext passwd`.

Format (shared with ``sqlext/java/sqlext/PasswordFileAuthenticator.java``, which verifies
logins on the server): one user per line, ``#`` comments and blank lines ignored::

    USER:pbkdf2_sha256$ITERATIONS$SALT_B64$HASH_B64

``HASH`` is PBKDF2-HMAC-SHA256 of the UTF-8 password with that user's random 16-byte salt;
base64 is the standard alphabet with padding.  No plain text is ever stored.

Contracts:
- ``hash_password(pw)`` -> a fresh ``pbkdf2_sha256$...`` string (new random salt each call).
- ``check_password(pw, encoded)`` -> bool, constant-time compare; False for malformed input.
- ``load(path)`` -> {user: encoded}; raises PasswordFileError naming the bad line (never its content).
- ``set_password(path, user, pw)`` adds or replaces one user, ``remove_user`` drops one; both
  rewrite the file atomically (temp file + rename, mode 0600), so the running server, which
  re-reads the file when it changes, never sees half a file.  One writer at a time.
"""
import base64
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from pathlib import Path

SCHEME = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
MIN_ITERATIONS = 1_000        # the Java side refuses fewer (and more than MAX_ITERATIONS)
MAX_ITERATIONS = 10_000_000
SALT_BYTES = 16
USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
_ENTRY = re.compile(r"^pbkdf2_sha256\$([0-9]{1,9})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


class PasswordFileError(ValueError):
    """The password file, a user name or a password is not acceptable."""


def check_user(user: str) -> str:
    if not USER.match(user or ""):
        raise PasswordFileError(f"invalid user name {user!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    return user


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes = None) -> str:
    """Return ``pbkdf2_sha256$ITER$SALT_B64$HASH_B64`` for ``password`` (a new random salt unless given)."""
    if not password:
        raise PasswordFileError("empty password")
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise PasswordFileError(f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}")
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return f"{SCHEME}${iterations}${b64(salt)}${b64(digest)}"


def _parse(encoded: str) -> tuple:
    match = _ENTRY.match(encoded or "")
    if not match:
        raise PasswordFileError(f"not a {SCHEME} entry")
    iterations = int(match.group(1))
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise PasswordFileError(f"iterations out of range ({iterations})")
    try:
        salt, digest = base64.b64decode(match.group(2), validate=True), base64.b64decode(match.group(3), validate=True)
    except ValueError:
        raise PasswordFileError("bad base64") from None
    if not salt or len(digest) < 16:
        raise PasswordFileError("salt or hash too short")
    return iterations, salt, digest


def check_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; False for a wrong password or a malformed entry."""
    try:
        iterations, salt, digest = _parse(encoded)
    except PasswordFileError:
        return False
    actual = hashlib.pbkdf2_hmac("sha256", (password or "").encode("utf-8"), salt, iterations, len(digest))
    return hmac.compare_digest(actual, digest) and bool(password)


def parse_lines(text: str, source: str = "password file") -> dict:
    """{user: encoded} from the file's text; PasswordFileError names the first bad line by number."""
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        try:
            if not sep:
                raise PasswordFileError("expected USER:HASH")
            check_user(user)
            _parse(encoded)
        except PasswordFileError as exc:
            raise PasswordFileError(f"{source} line {number}: {exc}") from None
        if user in users:
            raise PasswordFileError(f"{source} line {number}: user {user!r} appears twice")
        users[user] = encoded
    return users


def load(path) -> dict:
    """{user: encoded} from ``path``; a missing file is an error (PasswordFileError)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PasswordFileError(f"no password file at {path}") from None
    return parse_lines(text, str(path))


def _write(path: Path, users: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "# sqlext password file: USER:pbkdf2_sha256$ITER$SALT$HASH (edit with `sqlext passwd`)\n"
    body += "".join(f"{user}:{encoded}\n" for user, encoded in sorted(users.items()))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _existing(path: Path) -> dict:
    return load(path) if path.exists() else {}


def set_password(path, user: str, password: str, iterations: int = DEFAULT_ITERATIONS) -> bool:
    """Add ``user`` or replace its password; return True if the user is new."""
    path = Path(path)
    users = _existing(path)
    new = check_user(user) not in users
    users[user] = hash_password(password, iterations)
    _write(path, users)
    return new


def remove_user(path, user: str) -> bool:
    """Drop ``user``; return False if it was not there."""
    path = Path(path)
    users = _existing(path)
    if users.pop(user, None) is None:
        return False
    _write(path, users)
    return True


def read_new_password(stdin, prompt_user: str) -> str:
    """The new password: prompted twice (no echo) on a terminal, else the first line of ``stdin``."""
    import getpass

    if stdin.isatty():
        first = getpass.getpass(f"new password for {prompt_user}: ")
        if first != getpass.getpass("again: "):
            raise PasswordFileError("the passwords do not match")
        return first
    return stdin.readline().rstrip("\r\n")
