"""Class data sharing for sqlext's driver JVM: Spark's classes parsed once per machine, mapped at every start.

A JVM started with ``-XX:ArchiveClassesAtExit=F`` writes the classes it loaded to F when it exits (JDK 13+
dynamic AppCDS); a JVM started with ``-XX:SharedArchiveFile=F`` and the same class path maps F instead of
reading, parsing and verifying those classes from Spark's jars again.  Measured here: SparkSession up in
1.5 s instead of 2.4, its first query in 1.1 s instead of 2.1; `sqlext train` ~14.3 -> 12.5 s.  Writing the
archive costs the first ``sqlext ingest`` or ``train`` a few seconds at exit, once.  ``sqlext serve`` does
not use it: a long-running server starts once, and its one-row queries were ~20 ms slower with it.

Archives live in the cache folder, named by a digest of what the JVM's class path is made of (the java
binary, Spark's jars and conf, sqlext's jar), so every $SQLEXT_HOME on the machine shares them.  A JVM
that cannot use an archive ignores it (``-Xshare:auto``, the default).  ``SQLEXT_CLASS_ARCHIVE=off`` turns
this off.
"""
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

from .config import cache_folder

QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # a JVM that cannot map the archive says so on stdout
KEEP = 3                   # archives kept (a new JDK, Spark or sqlext jar makes a new one)
STALE_SECONDS = 3600       # unfinished archives of JVMs that never exited through finish()
EXIT_SECONDS = 120         # writing takes ~6 s on 2 cores

_writing = None            # the unfinished archive this process's JVM writes at exit, if any


def enabled() -> bool:
    return os.environ.get("SQLEXT_CLASS_ARCHIVE", "on").lower() not in ("off", "0", "false", "no")


def _java() -> Path:
    java_home = os.environ.get("JAVA_HOME")  # what spark-class runs
    found = Path(java_home) / "bin" / "java" if java_home else shutil.which("java")
    return Path(found).resolve() if found else Path("java")


def _fingerprint(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return f"{path}:missing"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def archive_path(jar: Path, spark_jars: Path) -> Path:
    """The archive for a driver JVM whose class path is ``jar``, Spark's conf and ``spark_jars``."""
    parts = [_fingerprint(_java()), _fingerprint(Path(jar)), str(spark_jars.parent / "conf")]
    parts += sorted(_fingerprint(p) for p in spark_jars.glob("*.jar"))
    parts += [f"{name}={os.environ.get(name, '')}" for name in
              ("SPARK_HOME", "SPARK_CONF_DIR", "HADOOP_CONF_DIR", "YARN_CONF_DIR", "SPARK_DIST_CLASSPATH")]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return cache_folder() / f"classes-{digest}.jsa"


def java_options(jar: Path, spark_jars: Path, use: str = "map") -> str:
    """Options for the driver JVM: map the archive if it exists ("map", "write"), else write it at exit
    ("write"); "off": none."""
    global _writing
    if use not in ("map", "write", "off"):
        raise ValueError(f"class archive use must be map, write or off, not {use!r}")
    if use == "off" or not enabled():
        return ""
    archive = archive_path(jar, spark_jars)
    if archive.exists():
        os.utime(archive)  # most recently used: kept by _prune
        return f"-XX:SharedArchiveFile={archive} {QUIET}"
    if use != "write":
        return ""
    _remove_stale(archive.parent)
    _writing = (archive.with_name(f"{archive.stem}.{os.getpid()}.unfinished"), archive)
    return f"-XX:ArchiveClassesAtExit={_writing[0]} {QUIET}"


def finish(jvm_process) -> None:
    """After SparkSession.stop(): if this JVM writes the archive, let it exit now and publish the archive.

    Closing the JVM's stdin makes Spark's gateway exit; the JVM writes the archive while exiting and it
    is renamed into place only if the JVM exited cleanly.  The JVM cannot be used afterwards."""
    global _writing
    if _writing is None or jvm_process is None:
        return
    unfinished, archive = _writing
    _writing = None
    print(f"saving the JVM's class archive (once per machine; later starts are faster): {archive}",
          file=sys.stderr, flush=True)
    try:
        jvm_process.stdin.close()
        code = jvm_process.wait(EXIT_SECONDS)
    except Exception:  # a JVM that does not exit in time keeps running; its archive is not used
        code = None
    if code == 0 and unfinished.exists() and unfinished.stat().st_size > 0:
        os.replace(unfinished, archive)
        _prune(archive.parent)
    else:
        unfinished.unlink(missing_ok=True)


def _remove_stale(folder: Path) -> None:
    for path in folder.glob("classes-*.unfinished"):
        try:
            if time.time() - path.stat().st_mtime > STALE_SECONDS:
                path.unlink()
        except OSError:
            pass


def _prune(folder: Path) -> None:
    archives = sorted(folder.glob("classes-*.jsa"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in archives[KEEP:]:
        old.unlink(missing_ok=True)
