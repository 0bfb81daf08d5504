"""Which Hive metastore a sqlext process uses, as Spark settings.

The first of these that is set wins:

1. the global flag ``sqlext --metastore URL COMMAND ...`` (it sets ``SQLEXT_METASTORE`` for the
   process, so everything the command starts uses the same metastore);
2. the environment variable ``SQLEXT_METASTORE=URL``;
3. the config file ``$SQLEXT_HOME/sqlext.conf``::

       [metastore]
       url = postgres://USER:PASSWORD@HOST:5432/DATABASE

4. otherwise embedded Derby in ``$SQLEXT_HOME/metastore_db`` (zero setup, ONE process at a time).

URL forms: ``derby`` (the default above) and ``postgres://USER:PASSWORD@HOST[:PORT]/DATABASE[?k=v&..]``
(``postgresql://`` too; user and password percent-encoded; query parameters go to the JDBC URL).
A PostgreSQL metastore is shared: a running ``sqlext serve`` and any number of ``sqlext ingest``
processes see each other's tables.  The database must exist (``createdb``); Hive's tables are
created in it on first use.  The JDBC driver jar is ``$SQLEXT_PG_JDBC_JAR``, else Debian's
``libpostgresql-jdbc-java`` one.  Table data is not in the metastore: every process that shares
it must see the same warehouse folder / file paths.
"""
import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .config import Home

ENV = "SQLEXT_METASTORE"
CONF_FILE = "sqlext.conf"
JDBC_JAR_ENV = "SQLEXT_PG_JDBC_JAR"
DEBIAN_JDBC_JAR = "/usr/share/java/postgresql.jar"

# DataNucleus creates Hive's tables and columns as it first needs them (an empty database works);
# no foreign-key constraints, and no schema-version check (there is no schematool run).
POSTGRES_HIVE_SETTINGS = {
    "datanucleus.schema.autoCreateAll": "false",
    "datanucleus.autoCreateTables": "true",
    "datanucleus.autoCreateColumns": "true",
    "datanucleus.autoCreateConstraints": "false",
    "hive.metastore.schema.verification": "false",
}


class MetastoreError(SystemExit):
    """A metastore URL or setup that cannot work; the message says what to change."""


@dataclass(frozen=True)
class Metastore:
    kind: str                      # "derby" or "postgres"
    source: str                    # where the choice came from: flag/env, conf file, default
    host: str = ""
    port: int = 0
    database: str = ""
    user: str = ""
    password: str = ""
    params: tuple = ()

    @property
    def jdbc_url(self) -> str:
        query = f"?{urlencode(self.params)}" if self.params else ""
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}{query}"

    def describe(self) -> str:
        """One line for logs and messages, without the password."""
        if self.kind == "derby":
            return f"embedded Derby ({self.source})"
        return f"postgres://{self.user}@{self.host}:{self.port}/{self.database} ({self.source})"


def parse(url: str, source: str = "SQLEXT_METASTORE") -> Metastore:
    """Parse a metastore URL (see the module doc); raise MetastoreError with a fix if it is wrong."""
    def bad(why: str) -> MetastoreError:
        return MetastoreError(f"metastore URL from {source}: {why}; use 'derby' or "
                              "postgres://USER:PASSWORD@HOST:PORT/DATABASE")

    text = (url or "").strip()
    if text.lower() == "derby":
        return Metastore("derby", source)
    parts = urlsplit(text)
    if parts.scheme not in ("postgres", "postgresql"):
        raise bad(f"scheme {parts.scheme or 'none'!r} not supported")
    database = unquote(parts.path.lstrip("/"))
    try:
        port = parts.port or 5432
    except ValueError:
        raise bad("bad port") from None
    if not parts.hostname or not database or "/" in database or not parts.username:
        raise bad("a user, a host and a database are needed")
    return Metastore("postgres", source, parts.hostname, port, database, unquote(parts.username),
                     unquote(parts.password or ""), tuple(parse_qsl(parts.query)))


def resolve(home: Home) -> Metastore:
    """The metastore this process uses: $SQLEXT_METASTORE, else sqlext.conf, else Derby."""
    if os.environ.get(ENV, "").strip():
        return parse(os.environ[ENV], ENV)
    path = Path(home.root) / CONF_FILE
    if path.is_file():
        conf = configparser.ConfigParser(interpolation=None)
        try:
            conf.read(path)
        except configparser.Error as exc:
            raise MetastoreError(f"{path}: {exc}") from None
        url = conf.get("metastore", "url", fallback="").strip()
        if url:
            return parse(url, str(path))
    return Metastore("derby", "default")


def jdbc_jar() -> Path:
    jar = Path(os.environ.get(JDBC_JAR_ENV) or DEBIAN_JDBC_JAR)
    if not jar.is_file():
        raise MetastoreError(f"PostgreSQL JDBC driver not found at {jar}: install Debian's "
                             f"libpostgresql-jdbc-java (scripts/system-deps.sh) or set {JDBC_JAR_ENV}")
    return jar


def spark_settings(home: Home, metastore: Metastore) -> dict:
    """The Spark settings (``spark.hadoop.*`` reach the Hive client) that select ``metastore``."""
    if metastore.kind == "derby":
        return {"spark.hadoop.javax.jdo.option.ConnectionURL":
                f"jdbc:derby:;databaseName={home.metastore};create=true"}
    settings = {
        "spark.hadoop.javax.jdo.option.ConnectionURL": metastore.jdbc_url,
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        "spark.hadoop.javax.jdo.option.ConnectionUserName": metastore.user,
        "spark.hadoop.javax.jdo.option.ConnectionPassword": metastore.password,
    }
    settings.update({f"spark.hadoop.{k}": v for k, v in POSTGRES_HIVE_SETTINGS.items()})
    return settings


def apply(settings: dict, home: Home) -> Metastore:
    """Add the resolved metastore's settings to a SparkSession ``settings`` dict (in place).

    The PostgreSQL driver jar is appended to ``spark.driver.extraClassPath`` (kept, not replaced):
    with the builtin Hive client the metastore classes load from the driver's own classpath.
    """
    metastore = resolve(home)
    settings.update(spark_settings(home, metastore))
    if metastore.kind == "postgres":
        key = "spark.driver.extraClassPath"
        entries = [p for p in settings.get(key, "").split(os.pathsep) if p]
        settings[key] = os.pathsep.join(entries + [str(jdbc_jar())])
    return metastore
