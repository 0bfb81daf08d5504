"""The `sqlext` command: models, ingest, serve, sql (and `train`, added by the training package)."""
import argparse
import json
import logging
import os
import sys
from importlib.metadata import entry_points

from . import preprocess
from .config import Home


def _plugins(group: str) -> dict:
    return {ep.name: ep for ep in entry_points(group=group)}


def cmd_models_list(args, home: Home) -> int:
    from .registry import Registry

    registry = Registry.scan(home.models)
    rows = [(b.name, str(b.version), str(len(b.labels)), b.manifest["created"], b.manifest["backbone"],
             json.dumps(b.manifest.get("metrics", {}).get("summary", b.manifest.get("metrics", {})))[:60])
            for b in sorted(registry.bundles.values(), key=lambda b: (b.name, b.version))]
    from .sqlrunner import format_table
    print(format_table(["name", "version", "labels", "created", "backbone", "metrics"], rows))
    for folder, reason in registry.refused.items():
        print(f"refused: {reason}", file=sys.stderr)
    return 0


def cmd_models_import(args, home: Home) -> int:
    importers = _plugins("sqlext.importers")
    if args.backbone not in importers:
        known = ", ".join(sorted(importers)) or "none (install sqlext[train])"
        print(f"error: unknown backbone {args.backbone!r}; available: {known}", file=sys.stderr)
        return 2
    bundle = importers[args.backbone].load()(home, args)
    print(f"imported {bundle.key} ({len(bundle.labels)} labels) -> {bundle.path}")
    return 0


def cmd_ingest(args, home: Home) -> int:
    from .ingest import plan, run
    from .session import start, stop

    job = plan(args.folder, args.table, args.label_from_dir, args.append, external=args.external,
               partition_by=args.partition_by, glob=args.glob, recursive=args.recursive)
    spark = start(home, "sqlext-ingest", args.master, archive="write")
    try:
        result = run(spark, job)
    finally:
        stop(spark)
    print(result["summary"])
    return 0


def cmd_serve(args, home: Home) -> int:
    from .auth import AuthConfigError, hive_settings
    from .server import serve

    try:
        auth = hive_settings(args.auth, args.ldap_url, args.ldap_base_dn, args.password_file)
    except AuthConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve(home, args.host, args.port, args.default_model, args.master, args.reload_interval, auth=auth,
          hbase_tables=args.hbase_table)
    return 0


def cmd_passwd(args, home: Home) -> int:
    from . import passwords

    try:
        if args.delete:
            if not passwords.remove_user(args.password_file, args.user):
                print(f"error: no user {args.user!r} in {args.password_file}", file=sys.stderr)
                return 1
            print(f"removed {args.user}")
            return 0
        passwords.check_user(args.user)
        password = passwords.read_new_password(sys.stdin, args.user)
        new = passwords.set_password(args.password_file, args.user, password, args.iterations)
    except passwords.PasswordFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'added' if new else 'changed password of'} {args.user}")
    return 0


def cmd_sql(args, home: Home) -> int:
    from .sqlrunner import StatementError, run

    if (args.file is None) == (args.execute is None):
        print("error: give a FILE.sql or -e 'SQL'", file=sys.stderr)
        return 2
    script = args.execute if args.execute is not None else open(args.file).read()
    from .auth import AuthConfigError, client_credentials

    try:
        auth, password = client_credentials(args.auth, args.password, args.username)
    except AuthConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run(script, args.host, args.port, username=args.username, password=password, auth=auth)
    except StatementError as exc:
        print(f"error at line {exc.line}: {exc.message}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sqlext", description=__doc__)
    top.add_argument("--home", help="state folder (default: $SQLEXT_HOME or ./.sqlext)")
    top.add_argument("--metastore", metavar="URL",
                     help="Hive metastore: postgres://USER:PASS@HOST:PORT/DB (shared by all processes) or derby "
                          "(default: $SQLEXT_METASTORE, else [metastore] url in $SQLEXT_HOME/sqlext.conf, else derby)")
    commands = top.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="list or import model bundles")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="bundles under $SQLEXT_HOME/models").set_defaults(func=cmd_models_list)
    imp = models_sub.add_parser("import", help="publish a pretrained classifier as a bundle")
    imp.add_argument("backbone", help="efficientnet-lite0, resnet50 or bigdl (a classifier saved by BigDL)")
    imp.add_argument("--name", default="imagenet", help="bundle name (default: imagenet)")
    imp.add_argument("--weights", help="weights file, where the backbone needs one (resnet50)")
    bigdl = imp.add_argument_group("bigdl: serve a classifier saved by BigDL")
    bigdl.add_argument("--bigdl-model", metavar="FILE", help="the model file (BigDL saveModel)")
    bigdl.add_argument("--labels", metavar="FILE", help="its class names, one per line, in output order")
    preprocess.add_flags(bigdl)
    imp.add_argument("--master", help="Spark master for BigDL (default: $SQLEXT_MASTER or local[*])")
    imp.set_defaults(func=cmd_models_import)

    ing = commands.add_parser("ingest", help="load a folder of images into a Hive table")
    ing.add_argument("folder")
    ing.add_argument("--table", required=True, help="DB.TABLE")
    ing.add_argument("--label-from-dir", action="store_true", help="label = the image's parent folder name")
    ing.add_argument("--append", action="store_true", help="add only files not already in the table")
    ing.add_argument("--external", action="store_true",
                     help="no copy: a binaryFile table over the folder (new files show after REFRESH TABLE)")
    ing.add_argument("--partition-by", metavar="COL[,COL]",
                     help="--external: each sub-folder level (COL=value/ or value/) is a partition column")
    ing.add_argument("--glob", help="file names to take (default: common image extensions)")
    ing.add_argument("--recursive", action="store_true",
                     help="--external: also files in sub-folders (managed ingest always takes them)")
    ing.add_argument("--master", help="Spark master (default: $SQLEXT_MASTER or local[*])")
    ing.set_defaults(func=cmd_ingest)

    srv = commands.add_parser("serve", help="run the Thrift server (HiveServer2 protocol)")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=10000)
    srv.add_argument("--default-model", default="", help="model used when SQL names none")
    srv.add_argument("--master", help="Spark master (default: $SQLEXT_MASTER or local[*])")
    srv.add_argument("--reload-interval", type=float, default=5.0,
                     help="seconds between bundle scans (and HBase region/column checks)")
    from .hbase import HELP as HBASE_HELP, METAVAR as HBASE_METAVAR, parse_mapping
    srv.add_argument("--hbase-table", action="append", default=[], type=parse_mapping, metavar=HBASE_METAVAR,
                     help=HBASE_HELP)
    srv.add_argument("--auth", choices=("none", "ldap", "password"), default="none",
                     help="client authentication (default none: loopback use only)")
    srv.add_argument("--ldap-url", help="--auth ldap: ldap://HOST:PORT or ldaps://HOST:PORT")
    srv.add_argument("--ldap-base-dn", help="--auth ldap: users bind as uid=USER,BASE_DN")
    srv.add_argument("--password-file", help="--auth password: the file `sqlext passwd` writes")
    srv.set_defaults(func=cmd_serve)

    pw = commands.add_parser("passwd", help="add a user or change a password in a password file")
    pw.add_argument("user")
    pw.add_argument("--password-file", required=True, help="created if missing (mode 0600)")
    pw.add_argument("--iterations", type=int, default=600_000, help="PBKDF2 iterations (default 600000)")
    pw.add_argument("--delete", action="store_true", help="remove the user instead")
    pw.set_defaults(func=cmd_passwd)

    sql = commands.add_parser("sql", help="run SQL against a running server")
    sql.add_argument("file", nargs="?")
    sql.add_argument("-e", "--execute", help="SQL text instead of a file")
    sql.add_argument("--host", default="127.0.0.1")
    sql.add_argument("--port", type=int, default=10000)
    sql.add_argument("--username", default=None)
    sql.add_argument("--password", action="store_true",
                     help="log in with a password: $SQLEXT_PASSWORD if set, else a prompt (never on the command line)")
    sql.add_argument("--auth", choices=("none", "ldap", "password"), default=None,
                     help="the server's --auth (default: password if a password is given, else none)")
    sql.set_defaults(func=cmd_sql)

    for name, ep in sorted(_plugins("sqlext.commands").items()):
        try:
            ep.load()(commands)
        except ImportError as exc:  # serving-only installs have no training extras
            commands.add_parser(name, help=f"unavailable: {exc}")
    return top


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    if not hasattr(args, "func"):
        print(f"error: `sqlext {args.command}` needs the training extras: pip install 'sqlext[train]'",
              file=sys.stderr)
        return 2
    if args.metastore:  # as an env var it reaches every process the command starts
        from .metastore import parse

        parse(args.metastore, "--metastore")   # a wrong URL fails here, before Spark starts
        os.environ["SQLEXT_METASTORE"] = args.metastore
    return args.func(args, Home.from_env(args.home))


if __name__ == "__main__":
    sys.exit(main())
