"""Security of the SQL endpoint: LDAP and password-file logins on a real `sqlext serve`,
with a real slapd and real clients (PyHive, beeline, `sqlext sql`); binding warnings."""
import os
import re
import stat
import subprocess
from pathlib import Path

import pyspark
import pytest
from conftest import BIN, Server, make_home, sqlext_cmd
from ldap_server import PEOPLE, LdapServer

from sqlext import auth, passwords

BEELINE = Path(pyspark.__file__).parent / "bin" / "beeline"
# throwaway test credentials (beeline's -p puts them on its command line; real use: a prompt).
# Beeline 2.3 splits its connect line on spaces, so its users have passwords without any;
# DAVE's has spaces and is tested through PyHive.
ALICE, ALICE_PW = "alice", "Al1ce:in-W0nderland!"
BOB, BOB_PW = "bob", "s3cret:pässwort"        # non-ASCII: see PasswordFileAuthenticator.utf8
CAROL, CAROL_PW = "carol", "added-while-running"
DAVE, DAVE_PW = "dave", "correct horse battery staple"
FAST = "2000"  # PBKDF2 iterations for users added during the tests (the default, 600000, is slow)


def _login(server, user, password, mode):
    """current_user() as seen by the server, through PyHive with SASL PLAIN."""
    return server.query("SELECT current_user()", username=user, password=password, auth=mode)


def _refused(server, user, password, mode):
    with pytest.raises(Exception) as info:
        _login(server, user, password, mode)
    assert "validating the login" in str(info.value) or "Bad status" in str(info.value), info.value
    return info.value


def _all_refused(server, mode, user, logins):
    """Each (user, password) of ``logins`` is refused, so is ``user`` without a password; the server keeps serving."""
    for name, password in logins:
        _refused(server, name, password, mode)
    with pytest.raises(Exception):
        server.query("SELECT 1", username=user)  # no password at all (auth NONE)
    assert server.alive()


def _beeline(server, user, password, sql="SELECT current_user() AS who;"):
    return subprocess.run(
        [str(BEELINE), "-u", server.url, "-n", user, "-p", password, "--silent=true", "--outputformat=csv2",
         "-e", sql], capture_output=True, text=True, timeout=180)


def _beeline_ok(server, user, password):
    result = _beeline(server, user, password)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["who", user], result.stdout


def _beeline_refused(server, user, password):
    result = _beeline(server, user, password)
    assert result.returncode != 0, result.stdout
    assert "who" not in result.stdout.split()
    assert "validating the login" in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


def _sqlext_sql(server, *args, password=None):
    env = {"SQLEXT_PASSWORD": password} if password is not None else {}
    return sqlext_cmd(server.home, "sql", "--host", server.host, "--port", server.port, *args,
                      "-e", "SELECT current_user() AS who", check=False, env=env, timeout=120)


def _passwd(password_file, user, password, *extra):
    """The real `sqlext passwd`, the password on stdin as a script would give it."""
    return subprocess.run([str(BIN / "sqlext"), "passwd", user, "--password-file", str(password_file), *extra],
                          input=password + "\n", capture_output=True, text=True, timeout=60)


# ---- no server ----------------------------------------------------------------------------------

def test_password_hashes_are_salted_and_verify():
    first, second = passwords.hash_password(BOB_PW, 1000), passwords.hash_password(BOB_PW, 1000)
    assert first != second  # a fresh salt each time
    assert re.fullmatch(r"pbkdf2_sha256\$1000\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}", first)
    assert passwords.check_password(BOB_PW, first) and passwords.check_password(BOB_PW, second)
    assert not passwords.check_password(BOB_PW + "x", first)
    assert not passwords.check_password("", first)
    assert not passwords.check_password(BOB_PW, "pbkdf2_sha256$1000$bad")
    with pytest.raises(passwords.PasswordFileError):
        passwords.hash_password(BOB_PW, 10)


def test_bad_password_file_line_is_named_without_its_content(tmp_path):
    path = tmp_path / "users"
    path.write_text(f"# comment\n\nbob:{passwords.hash_password(BOB_PW, 1000)}\ncarol:plaintext-oops\n")
    with pytest.raises(passwords.PasswordFileError) as info:
        passwords.load(path)
    assert "line 4" in str(info.value) and "plaintext-oops" not in str(info.value)
    with pytest.raises(auth.AuthConfigError, match="line 4"):
        auth.hive_settings("password", password_file=path)


def test_exposure_warning_depends_on_host_and_auth():
    no_auth = auth.hive_settings("none")
    ldap = auth.hive_settings("ldap", "ldap://127.0.0.1:389", PEOPLE)
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        assert auth.warnings(host, no_auth) == [] and auth.warnings(host, ldap) == []
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        assert "WITHOUT authentication" in " ".join(auth.warnings(host, no_auth))
        assert "WITHOUT authentication" in " ".join(auth.warnings(host, None))
        assert "WITHOUT authentication" not in " ".join(auth.warnings(host, ldap))
    remote_ldap = auth.hive_settings("ldap", "ldap://192.0.2.20:389", PEOPLE)
    assert "prefer ldaps://" in " ".join(auth.warnings("127.0.0.1", remote_ldap))


def test_client_password_never_from_argv():
    assert auth.client_credentials(None, False, "bob", env={}) == (None, None)
    assert auth.client_credentials(None, False, "bob", env={"SQLEXT_PASSWORD": "pw"}) == ("CUSTOM", "pw")
    assert auth.client_credentials("ldap", False, "bob", env={"SQLEXT_PASSWORD": "pw"}) == ("LDAP", "pw")
    assert auth.client_credentials(None, True, "bob", env={}, prompt=lambda _: "typed") == ("CUSTOM", "typed")
    with pytest.raises(auth.AuthConfigError, match="--username"):
        auth.client_credentials("password", False, None, env={"SQLEXT_PASSWORD": "pw"})
    from sqlext.cli import parser

    args = parser().parse_args(["sql", "--username", "bob", "--password", "-e", "SELECT 1"])
    assert args.password is True  # a flag: the password itself is never an argument


def test_serve_refuses_incomplete_auth_options(tmp_path):
    for args, message in ((["--auth", "ldap"], "--ldap-url"),
                          (["--auth", "ldap", "--ldap-url", "http://x"], "invalid LDAP URL"),
                          (["--auth", "password"], "--password-file"),
                          (["--auth", "password", "--password-file", tmp_path / "none"], "no password file")):
        result = sqlext_cmd(tmp_path, "serve", "--port", "1", *args, check=False, timeout=60)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_passwd_cli_writes_hashes_only(tmp_path):
    path = tmp_path / "conf" / "users"
    result = _passwd(path, BOB, BOB_PW, "--iterations", FAST)
    assert result.returncode == 0 and "added bob" in result.stdout, result.stderr
    assert _passwd(path, CAROL, CAROL_PW, "--iterations", FAST).returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert BOB_PW not in text and CAROL_PW not in text
    users = passwords.load(path)
    assert set(users) == {BOB, CAROL} and passwords.check_password(BOB_PW, users[BOB])
    assert _passwd(path, BOB, "new one", "--iterations", FAST).stdout.startswith("changed password of bob")
    assert passwords.check_password("new one", passwords.load(path)[BOB])
    assert _passwd(path, "bad:name", "x").returncode == 2
    bad = subprocess.run([str(BIN / "sqlext"), "passwd", BOB, "pw-on-argv", "--password-file", str(path)],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and passwords.check_password("new one", passwords.load(path)[BOB])
    assert _passwd(path, CAROL, "", "--delete").returncode == 0 and set(passwords.load(path)) == {BOB}


# ---- LDAP (real slapd) --------------------------------------------------------------------------

@pytest.fixture(scope="class")
def slapd():
    server = LdapServer({ALICE: ALICE_PW, DAVE: DAVE_PW}).start()
    yield server
    server.stop()


@pytest.fixture(scope="class")
def ldap_server(slapd, tmp_path_factory, imagenet_bundle_dir):
    home = make_home(tmp_path_factory, imagenet_bundle_dir, "ldap_home")
    srv = Server(home.root, extra_args=["--auth", "ldap", "--ldap-url", slapd.url, "--ldap-base-dn", PEOPLE]).start()
    yield srv
    srv.stop()


class TestLdap:
    def test_slapd_itself_checks_passwords(self, slapd):
        assert slapd.whoami(ALICE, ALICE_PW).returncode == 0
        assert slapd.whoami(ALICE, "wrong").returncode == 49  # invalidCredentials

    def test_pyhive_right_password(self, ldap_server):
        assert _login(ldap_server, ALICE, ALICE_PW, "LDAP") == [(ALICE,)]
        assert _login(ldap_server, DAVE, DAVE_PW, "LDAP") == [(DAVE,)]
        assert "authentication: LDAP" in ldap_server.log()
        assert "WITHOUT authentication" not in ldap_server.log()

    def test_pyhive_wrong_password_unknown_user_empty_password(self, ldap_server):
        # ALICE with "": an LDAP "unauthenticated bind" must not pass
        _all_refused(ldap_server, "LDAP", ALICE, [(ALICE, "wrong"), ("mallory", ALICE_PW), (ALICE, "")])

    def test_beeline(self, ldap_server):
        _beeline_ok(ldap_server, ALICE, ALICE_PW)
        _beeline_refused(ldap_server, ALICE, "wrong")

    def test_sqlext_sql_with_password_from_env(self, ldap_server):
        ok = _sqlext_sql(ldap_server, "--auth", "ldap", "--username", ALICE, password=ALICE_PW)
        assert ok.returncode == 0 and "| alice |" in ok.stdout, ok.stderr
        bad = _sqlext_sql(ldap_server, "--auth", "ldap", "--username", ALICE, password="wrong")
        assert bad.returncode != 0 and "alice |" not in bad.stdout


# ---- password file (CUSTOM mode) ----------------------------------------------------------------

@pytest.fixture(scope="class")
def password_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "sqlext-users"
    result = _passwd(path, BOB, BOB_PW)  # the default iteration count, as an admin would
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="class")
def pw_server(password_file, tmp_path_factory, imagenet_bundle_dir):
    home = make_home(tmp_path_factory, imagenet_bundle_dir, "pw_home")
    srv = Server(home.root, extra_args=["--auth", "password", "--password-file", password_file]).start()
    yield srv
    srv.stop()


class TestPasswordFile:
    def test_file_holds_no_plain_text(self, password_file):
        text = password_file.read_text()
        assert BOB_PW not in text and BOB_PW.encode("utf-8").hex() not in text
        assert re.search(r"^bob:pbkdf2_sha256\$600000\$\S+\$\S+$", text, re.M), text
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600

    def test_pyhive_right_wrong_unknown(self, pw_server):
        assert _login(pw_server, BOB, BOB_PW, "CUSTOM") == [(BOB,)]
        assert "authentication: CUSTOM" in pw_server.log()
        _all_refused(pw_server, "CUSTOM", BOB, [(BOB, BOB_PW + "!"), (BOB, BOB_PW.replace("ä", "a")),
                                                ("nobody", BOB_PW), (BOB, "")])

    def test_beeline_right_wrong_unknown(self, pw_server):
        _beeline_ok(pw_server, BOB, BOB_PW)
        _beeline_refused(pw_server, BOB, "wrong")
        _beeline_refused(pw_server, "nobody", BOB_PW)

    def test_user_added_and_password_changed_while_running(self, pw_server, password_file):
        _refused(pw_server, CAROL, CAROL_PW, "CUSTOM")
        _refused(pw_server, DAVE, DAVE_PW, "CUSTOM")
        assert _passwd(password_file, DAVE, DAVE_PW, "--iterations", FAST).returncode == 0
        assert _login(pw_server, DAVE, DAVE_PW, "CUSTOM") == [(DAVE,)]
        assert _passwd(password_file, CAROL, CAROL_PW, "--iterations", FAST).returncode == 0
        assert _login(pw_server, CAROL, CAROL_PW, "CUSTOM") == [(CAROL,)]
        _beeline_ok(pw_server, CAROL, CAROL_PW)
        assert _passwd(password_file, CAROL, "rotated", "--iterations", FAST).returncode == 0
        _refused(pw_server, CAROL, CAROL_PW, "CUSTOM")
        assert _login(pw_server, CAROL, "rotated", "CUSTOM") == [(CAROL,)]
        assert _login(pw_server, BOB, BOB_PW, "CUSTOM") == [(BOB,)]

    def test_sqlext_sql_with_password_from_env(self, pw_server):
        ok = _sqlext_sql(pw_server, "--username", BOB, "--password", password=BOB_PW)
        assert ok.returncode == 0 and "| bob |" in ok.stdout, ok.stderr
        bad = _sqlext_sql(pw_server, "--username", BOB, "--auth", "password", password="nope")
        assert bad.returncode != 0 and "bob |" not in bad.stdout

    def test_no_secret_in_server_log(self, pw_server):
        log = pw_server.log()
        for secret in (BOB_PW, CAROL_PW, DAVE_PW, "rotated", "nope"):
            assert secret not in log
        assert "login refused for user 'nobody' (unknown user)" in log  # the user, never the password


# ---- binding ------------------------------------------------------------------------------------

def test_non_loopback_without_auth_warns(tmp_path_factory, imagenet_bundle_dir):
    home = make_home(tmp_path_factory, imagenet_bundle_dir, "exposed_home")
    srv = Server(home.root)
    srv.host = "0.0.0.0"  # all interfaces; the test itself only talks to it through loopback
    try:
        srv.start()
    finally:
        srv.stop()
    assert re.search(r"^WARNING sqlext\.server: binding 0\.0\.0\.0 WITHOUT authentication", srv.log(), re.M), \
        srv.log()[-3000:]
