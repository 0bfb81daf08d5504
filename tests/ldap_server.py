"""A throwaway OpenLDAP server for tests (Debian's `slapd`, see scripts/system-deps.sh).

``LdapServer({"alice": "pw"}).start()`` writes a minimal ``slapd.conf`` (mdb backend, suffix
``dc=example,dc=org``) in a fresh temp folder, loads one entry per user with ``slapadd``
(``uid=USER,ou=people,dc=example,dc=org``, inetOrgPerson, ``{SSHA}`` password), then runs
``slapd -d 0`` (foreground, not a daemon) listening on ``ldap://127.0.0.1:PORT/`` only.  The
system's own slapd service is never used.  ``stop()`` ends the process and deletes the folder.
Passwords never reach a command line (the readiness check reads its password from a 0600 file).
"""
import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
SCHEMAS = ("core", "cosine", "inetorgperson")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssha(password: str) -> str:
    """The ``{SSHA}`` form slapd checks simple binds against."""
    salt = secrets.token_bytes(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


class LdapServer:
    """One slapd with the given users (uid -> password) under ``ou=people,dc=example,dc=org``."""

    def __init__(self, users: dict):
        if not (os.path.exists(SLAPD) and shutil.which("slapadd", path="/usr/sbin:/usr/bin")):
            raise RuntimeError("slapd not found: run `bash scripts/system-deps.sh` as root (installs Debian's slapd)")
        self.users, self.port, self.root, self.proc = dict(users), None, None, None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @staticmethod
    def dn(user: str) -> str:
        return f"uid={user},{PEOPLE}"

    def _config(self) -> Path:
        root = Path(self.root)
        (root / "data").mkdir(mode=0o700)
        lines = [f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS]
        lines += [
            f"pidfile {root / 'slapd.pid'}",
            f"argsfile {root / 'slapd.args'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            "database mdb",
            "maxsize 10485760",
            f'suffix "{SUFFIX}"',
            f"directory {root / 'data'}",
            "access to attrs=userPassword by anonymous auth by self read by * none",
            "access to * by * read",
        ]
        conf = root / "slapd.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def _ldif(self) -> str:
        entries = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
                   f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n"]
        for user, password in self.users.items():
            entries.append(f"dn: {self.dn(user)}\nobjectClass: inetOrgPerson\nuid: {user}\ncn: {user}\n"
                           f"sn: Test\nuserPassword: {ssha(password)}\n")
        return "\n".join(entries)

    def _run(self, *args, stdin_text=None):
        result = subprocess.run([str(a) for a in args], input=stdin_text, capture_output=True, text=True,
                                timeout=60, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result

    def start(self, attempts: int = 3, timeout: float = 30) -> "LdapServer":
        self.root = tempfile.mkdtemp(prefix="sqlext-ldap-")
        conf = self._config()
        self._run("/usr/sbin/slapadd", "-f", conf, "-l", "/dev/stdin", stdin_text=self._ldif())
        for attempt in range(attempts):  # the free port can be taken between choosing and binding
            self.port = _free_port()
            self._log = open(Path(self.root) / "slapd.log", "ab")
            self.proc = subprocess.Popen([SLAPD, "-d", "0", "-f", str(conf), "-h", f"{self.url}/"],
                                         stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root,
                                         start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return self
                except OSError:
                    time.sleep(0.1)
            self._end()
        raise RuntimeError(f"slapd did not start:\n{self.log()[-2000:]}")

    def whoami(self, user: str, password: str) -> subprocess.CompletedProcess:
        """``ldapwhoami`` as ``user`` (simple bind); the password goes through a 0600 file."""
        fd, path = tempfile.mkstemp(dir=self.root)
        with os.fdopen(fd, "w") as fh:
            fh.write(password)  # -y takes the file's exact bytes: no newline
        try:
            return subprocess.run(["ldapwhoami", "-x", "-H", self.url, "-D", self.dn(user), "-y", path],
                                  capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(path)

    def log(self) -> str:
        path = self.root and Path(self.root) / "slapd.log"
        return path.read_text(errors="replace") if path and path.exists() else ""

    def _end(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()
        self.proc = None

    def stop(self) -> None:
        self._end()
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
