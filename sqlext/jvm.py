"""sqlext's few JVM classes (``sqlext/java``), compiled on first use against pyspark's jars.

The jar is content-addressed (``sqlext-<hash>.jar`` in the cache folder, shared by every $SQLEXT_HOME
so the JVM's class path, and with it the class archive, is the same for all), so a source change
builds a new jar and an unchanged one is never rebuilt.  Needs ``javac`` (any JDK 11+).
"""
import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from .config import cache_folder

SOURCES = Path(__file__).parent / "java"


def _sources() -> list:
    return sorted(SOURCES.rglob("*.java"))


def spark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def jar_path() -> Path:
    """Return the jar for the current sources, compiling it first if needed."""
    digest = hashlib.sha256()
    for source in _sources():
        digest.update(source.relative_to(SOURCES).as_posix().encode() + b"\0" + source.read_bytes())
    target = cache_folder() / f"sqlext-{digest.hexdigest()[:16]}.jar"
    if target.exists():
        return target
    javac = shutil.which("javac")
    if javac is None:
        raise RuntimeError("javac not found: sqlext compiles a few JVM classes at first start; install a JDK")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as classes:
        result = subprocess.run([javac, "--release", "11", "-nowarn", "-cp", f"{spark_jars()}/*", "-d", classes,
                                 *map(str, _sources())], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"compiling sqlext's JVM classes failed:\n{result.stderr[-3000:]}")
        partial = target.with_suffix(f".{os.getpid()}.partial")  # two first starts may build it at once
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            for cls in sorted(Path(classes).rglob("*.class")):
                jar.write(cls, cls.relative_to(classes).as_posix())
        os.replace(partial, target)
    return target
