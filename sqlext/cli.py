"""The `sqlext` command: models, ingest, serve, sql (and `train`, added by the training package)."""
import argparse
import json
import logging
import sys
from importlib.metadata import entry_points

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
    from .ingest import ingest
    from .session import start

    spark = start(home, "sqlext-ingest", args.master)
    try:
        result = ingest(spark, args.folder, args.table, args.label_from_dir, args.append)
    finally:
        spark.stop()
    print(f"{result['table']}: {result['added']} image(s) written, {result['rows']} row(s) in the table")
    return 0


def cmd_serve(args, home: Home) -> int:
    from .server import serve

    serve(home, args.host, args.port, args.default_model, args.master, args.reload_interval)
    return 0


def cmd_sql(args, home: Home) -> int:
    from .sqlrunner import StatementError, run

    if (args.file is None) == (args.execute is None):
        print("error: give a FILE.sql or -e 'SQL'", file=sys.stderr)
        return 2
    script = args.execute if args.execute is not None else open(args.file).read()
    try:
        run(script, args.host, args.port, username=args.username)
    except StatementError as exc:
        print(f"error at line {exc.line}: {exc.message}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sqlext", description=__doc__)
    top.add_argument("--home", help="state folder (default: $SQLEXT_HOME or ./.sqlext)")
    commands = top.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="list or import model bundles")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="bundles under $SQLEXT_HOME/models").set_defaults(func=cmd_models_list)
    imp = models_sub.add_parser("import", help="publish a pretrained backbone as a bundle")
    imp.add_argument("backbone", help="e.g. efficientnet-lite0")
    imp.add_argument("--name", default="imagenet", help="bundle name (default: imagenet)")
    imp.add_argument("--weights", help="weights file, where the backbone needs one (resnet50)")
    imp.add_argument("--bigdl-model", help="a BigDL model file to use as the featurizer")
    imp.set_defaults(func=cmd_models_import)

    ing = commands.add_parser("ingest", help="load a folder of images into a Hive table")
    ing.add_argument("folder")
    ing.add_argument("--table", required=True, help="DB.TABLE")
    ing.add_argument("--label-from-dir", action="store_true", help="label = the image's parent folder name")
    ing.add_argument("--append", action="store_true", help="add only files not already in the table")
    ing.add_argument("--master", help="Spark master (default: $SQLEXT_MASTER or local[*])")
    ing.set_defaults(func=cmd_ingest)

    srv = commands.add_parser("serve", help="run the Thrift server (HiveServer2 protocol)")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=10000)
    srv.add_argument("--default-model", default="", help="model used when SQL names none")
    srv.add_argument("--master", help="Spark master (default: $SQLEXT_MASTER or local[*])")
    srv.add_argument("--reload-interval", type=float, default=5.0, help="seconds between bundle scans")
    srv.set_defaults(func=cmd_serve)

    sql = commands.add_parser("sql", help="run SQL against a running server")
    sql.add_argument("file", nargs="?")
    sql.add_argument("-e", "--execute", help="SQL text instead of a file")
    sql.add_argument("--host", default="127.0.0.1")
    sql.add_argument("--port", type=int, default=10000)
    sql.add_argument("--username", default=None)
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
    return args.func(args, Home.from_env(args.home))


if __name__ == "__main__":
    sys.exit(main())
