"""Authentication of `sqlext serve`: the CLI's choice -> HiveServer2 settings, and exposure warnings.

Modes: ``none`` (HiveServer2 NONE: any user name, no password), ``ldap`` (simple bind of
``uid=USER,<base DN>`` against an LDAP server) and ``password`` (CUSTOM mode with
``sqlext.PasswordFileAuthenticator`` checking salted hashes in a file, see passwords.py).

Contracts:
- ``hive_settings(...)`` -> {HiveServer2 setting: value}; raises AuthConfigError when a mode lacks
  what it needs (LDAP URL, an existing and well-formed password file).  The values hold no secret.
- The server must put these settings both in the Spark conf (the Thrift server's HiveConf picks
  the mode from it) and in the driver JVM's system properties: HiveServer2 2.3 builds a fresh
  ``HiveConf()`` for every login (LdapAuthenticationProviderImpl, CustomAuthenticationProviderImpl),
  which sees system properties but not the Spark conf.
- ``warnings(host, settings)`` -> the warning lines to log before serving (empty when the server
  is loopback-only and its LDAP server, if any, is too).
- ``client_credentials(mode, ask, username)`` -> (PyHive auth, password) for `sqlext sql`; the
  password comes from $SQLEXT_PASSWORD or a no-echo prompt, never from the command line.
"""
import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

MODES = ("none", "ldap", "password")
CUSTOM_CLASS = "sqlext.PasswordFileAuthenticator"
PASSWORD_FILE_KEY = "sqlext.password.file"  # read by the Java class (system property or Hive conf)
# PyHive's `auth=` value for each mode (both LDAP and CUSTOM are SASL PLAIN on the wire)
CLIENT_AUTH = {"none": "NONE", "ldap": "LDAP", "password": "CUSTOM"}


class AuthConfigError(ValueError):
    """The authentication options are incomplete or wrong."""


def is_loopback(host: str) -> bool:
    """True if ``host`` (an address or a name) resolves to loopback addresses only."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def _check_ldap_url(url: str) -> str:
    if not (url or "").strip():
        raise AuthConfigError("--auth ldap needs --ldap-url ldap://HOST:PORT (or ldaps://)")
    for one in url.split():
        parsed = urlparse(one)
        if parsed.scheme not in ("ldap", "ldaps") or not parsed.hostname:
            raise AuthConfigError(f"invalid LDAP URL {one!r}: use ldap://HOST:PORT or ldaps://HOST:PORT")
    return url.strip()


def hive_settings(mode: str, ldap_url: str = None, ldap_base_dn: str = None, password_file=None) -> dict:
    """HiveServer2 settings for ``mode``; see the module docstring."""
    if mode in (None, "", "none"):
        return {"hive.server2.authentication": "NONE"}
    if mode == "ldap":
        settings = {"hive.server2.authentication": "LDAP",
                    "hive.server2.authentication.ldap.url": _check_ldap_url(ldap_url)}
        if ldap_base_dn:
            settings["hive.server2.authentication.ldap.baseDN"] = ldap_base_dn.strip()
        return settings
    if mode == "password":
        from .passwords import PasswordFileError, load

        if not password_file:
            raise AuthConfigError("--auth password needs --password-file FILE (create it with `sqlext passwd`)")
        path = Path(password_file).expanduser().resolve()
        try:
            load(path)
        except PasswordFileError as exc:
            raise AuthConfigError(str(exc)) from None
        return {"hive.server2.authentication": "CUSTOM",
                "hive.server2.custom.authentication.class": CUSTOM_CLASS,
                PASSWORD_FILE_KEY: str(path)}
    raise AuthConfigError(f"unknown auth mode {mode!r}; use one of {', '.join(MODES)}")


def warnings(host: str, settings: dict = None) -> list:
    """Warning lines for serving on ``host`` with ``settings`` (from hive_settings; None = no auth):
    exposure without authentication, passwords crossing the network in clear text."""
    settings = settings or {}
    mode = settings.get("hive.server2.authentication", "NONE").upper()
    lines = []
    exposed = not is_loopback(host)
    if exposed and mode in ("NONE", "NOSASL"):
        lines.append(f"binding {host} WITHOUT authentication: anyone who can reach this port can run SQL "
                     "as any user; use --auth ldap or --auth password (see README: Running it for real)")
    elif exposed:
        lines.append(f"binding {host}: the Thrift port has no TLS, so passwords cross the network in clear "
                     "text; keep it on a trusted network or behind a TLS tunnel")
    if mode == "LDAP":
        for one in settings.get("hive.server2.authentication.ldap.url", "").split():
            parsed = urlparse(one)
            if parsed.scheme == "ldap" and parsed.hostname and not is_loopback(parsed.hostname):
                lines.append(f"LDAP server {parsed.hostname} is reached over plain ldap://: "
                             "passwords cross the network in clear text; prefer ldaps://")
    return lines


PASSWORD_ENV = "SQLEXT_PASSWORD"


def client_credentials(mode: str = None, ask: bool = False, username: str = None, env=None, prompt=None) -> tuple:
    """(PyHive ``auth``, password) for a client; (None, None) when not authenticating.

    ``mode`` None means "password" if a password is asked for (``ask``) or in ``$SQLEXT_PASSWORD``,
    else "none".  The password is ``$SQLEXT_PASSWORD`` if set, else ``prompt(text)`` (default:
    getpass on the terminal); AuthConfigError if neither can give one or no user name is given.
    """
    env = os.environ if env is None else env
    if mode is None:
        mode = "password" if ask or env.get(PASSWORD_ENV) else "none"
    if mode not in CLIENT_AUTH:
        raise AuthConfigError(f"unknown auth mode {mode!r}; use one of {', '.join(MODES)}")
    if mode == "none":
        return None, None
    if not username:
        raise AuthConfigError(f"--auth {mode} needs --username")
    password = env.get(PASSWORD_ENV)
    if not password:
        if prompt is None:
            import getpass
            import sys

            if not sys.stdin.isatty():
                raise AuthConfigError(f"no password: set ${PASSWORD_ENV} or run on a terminal to be prompted")
            prompt = getpass.getpass
        password = prompt(f"password for {username}: ")
    if not password:
        raise AuthConfigError("empty password")
    return CLIENT_AUTH[mode], password
