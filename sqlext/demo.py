"""`make demo`: import the ImageNet bundle, ingest sample photos, serve, run sql/examples.

Every step goes through the real `sqlext` command, as a user would type it.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import samples, sqlrunner
from .config import Home
from .registry import Registry
from .serve_process import SQLEXT, NotReady, ServeProcess


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def sh(*args) -> None:
    print("$ sqlext " + " ".join(map(str, args)), flush=True)
    subprocess.run([SQLEXT, *map(str, args)], check=True)


def prepare(home: Home) -> None:
    if "imagenet" not in Registry.scan(home.models).names():
        step("import the pretrained EfficientNet-Lite0 (ImageNet, 1000 labels) as a bundle")
        sh("models", "import", "efficientnet-lite0", "--name", "imagenet")
    photos = home.root / "samples" / "photos"
    step(f"ingest sample photos shipped inside installed wheels ({photos})")
    samples.copy_sample_photos(photos)
    sh("ingest", photos, "--table", "demo.photos")
    for hook in _demo_hooks():
        hook(home, sh, step)
    sh("models", "list")


def _demo_hooks() -> list:
    """Extra demo steps contributed by installed plugins (the training package adds fine-tuning)."""
    from importlib.metadata import entry_points

    return [ep.load() for ep in sorted(entry_points(group="sqlext.demo"), key=lambda ep: ep.name)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=10000)
    ap.add_argument("--examples", default="sql/examples", help="folder of .sql files to run")
    ap.add_argument("--no-wait", action="store_true", help="stop the server after the examples")
    args = ap.parse_args(argv)
    home = Home.from_env().ensure()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    prepare(home)

    step(f"start the Thrift server on {args.host}:{args.port}")
    log_path = home.logs / "demo-serve.log"
    log_path.unlink(missing_ok=True)  # a fresh log each run: a ready line from an earlier run would match
    server = ServeProcess(home.root, args.port, log_path, host=args.host)
    try:
        server.start()
        print(f"ready: {server.url}  (server log: {log_path})")
        for script in sorted(Path(args.examples).glob("*.sql")):
            step(f"sqlext sql {script}")
            sqlrunner.run(script.read_text(), args.host, args.port)
        beeline = Path(__import__("pyspark").__file__).parent / "bin" / "beeline"
        step("the server keeps running; connect with")
        print(f"  {os.path.relpath(beeline)} -u {server.url} -n $USER")
        print(f"  {os.path.relpath(SQLEXT)} sql -e \"SELECT path, image_label(content) FROM demo.photos\"")
        print("Press Ctrl-C to stop.", flush=True)
        if not args.no_wait:
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
            while server.alive():
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    except NotReady as exc:
        raise SystemExit(f"{exc.reason}; see {log_path}") from None
    except sqlrunner.StatementError as exc:
        print(f"error at line {exc.line}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
