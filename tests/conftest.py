"""Shared fixtures: a state folder with the ImageNet bundle, sample photos, a live `sqlext serve`."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sqlext import samples
from sqlext.config import Home
from sqlext.serve_process import ServeProcess
from sqlext.sqlrunner import fetch

from pg import postgres  # noqa: F401  (session fixture: a throwaway PostgreSQL, see tests/pg.py)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session", autouse=True)
def cache_folder(tmp_path_factory) -> Path:
    """A cache folder of the suite's own (compiled jar, JVM class archive): none of the user's is reused."""
    folder = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("SQLEXT_CACHE_DIR")
    os.environ["SQLEXT_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("SQLEXT_CACHE_DIR", None)
    else:
        os.environ["SQLEXT_CACHE_DIR"] = previous


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sqlext_cmd(home, *args, check=True, timeout=600, env=None):
    """Run the real `sqlext` console script; return the CompletedProcess."""
    full_env = dict(os.environ, SQLEXT_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", **(env or {}))
    result = subprocess.run([str(BIN / "sqlext"), *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, env=full_env)
    if check and result.returncode != 0:
        raise AssertionError(f"sqlext {' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


class Server(ServeProcess):
    """A `sqlext serve` subprocess on a free loopback port, picking up new bundles within a second."""

    username = "tester"

    def __init__(self, home, port=None, extra_args=(), env=None):
        port = port or free_port()
        super().__init__(home, port, Path(home) / "logs" / f"serve-{port}.log",
                         ["--reload-interval", "1", *extra_args], env={"SPARK_LOCAL_IP": "127.0.0.1", **(env or {})})

    def query(self, sql, **kwargs) -> list:
        conn = self.connect(**kwargs)
        try:
            cursor = conn.cursor()
            cursor.execute(sql)
            return fetch(cursor)[1]
        finally:
            conn.close()


@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    samples.copy_sample_photos(folder)
    return folder


@pytest.fixture(scope="session")
def imagenet_bundle_dir(tmp_path_factory) -> Path:
    """A models folder holding the ImageNet EfficientNet-Lite0 bundle, imported once per run."""
    home = tmp_path_factory.mktemp("bundle_home")
    sqlext_cmd(home, "models", "import", "efficientnet-lite0", "--name", "imagenet")
    return home / "models"


def make_home(tmp_path_factory, imagenet_bundle_dir, name="home") -> Home:
    """A fresh $SQLEXT_HOME with a copy of the ImageNet bundle."""
    import shutil

    home = Home(tmp_path_factory.mktemp(name)).ensure()
    shutil.copytree(imagenet_bundle_dir / "imagenet", home.models / "imagenet")
    return home


@pytest.fixture(scope="session")
def served_home(tmp_path_factory, imagenet_bundle_dir, photos_dir) -> Home:
    home = make_home(tmp_path_factory, imagenet_bundle_dir, "served_home")
    sqlext_cmd(home.root, "ingest", photos_dir, "--table", "demo.photos")
    return home


@pytest.fixture(scope="session")
def server(served_home):
    """One `sqlext serve` for the whole run, with demo.photos ingested from the sample photos."""
    srv = Server(served_home.root).start()
    yield srv
    srv.stop()
