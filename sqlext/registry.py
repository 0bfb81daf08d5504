"""Find the bundles under a models folder and resolve ``'name'`` / ``'name:version'``.

A scan re-verifies (sha256) only bundle folders whose files changed since the last scan in
this process: see ``_load_cached``.
"""
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import bundle as _bundle

log = logging.getLogger("sqlext.registry")


class UnknownModel(ValueError):
    pass


@dataclass
class Registry:
    bundles: dict = field(default_factory=dict)   # "name:version" -> Bundle
    refused: dict = field(default_factory=dict)   # folder -> reason

    @classmethod
    def scan(cls, models_dir) -> "Registry":
        found = cls()
        root = Path(models_dir)
        if not root.is_dir():
            return found
        for name_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for version in _bundle.versions(root, name_dir.name):
                folder = name_dir / str(version)
                loaded = _load_cached(folder)
                if isinstance(loaded, str):
                    found.refused[str(folder)] = loaded
                    continue
                found.bundles[loaded.key] = loaded
        return found

    def names(self) -> list:
        return sorted({b.name for b in self.bundles.values()})

    def latest(self) -> dict:
        """name -> "name:version" of its highest sound version."""
        best = {}
        for b in self.bundles.values():
            if b.name not in best or b.version > self.bundles[best[b.name]].version:
                best[b.name] = b.key
        return best

    def resolve(self, spec: str) -> _bundle.Bundle:
        return self.bundles[resolve_key(spec, self.latest(), self.bundles, self.refused_models())]

    def refused_models(self) -> dict:
        """Why SQL cannot use a model: ``'name:version'`` -> reason for every refused version
        folder, and ``'name'`` -> reason when ``name`` has no sound version at all."""
        out = {}
        for folder, reason in sorted(self.refused.items(), key=lambda item: _version_order(item[0])):
            name, version = Path(folder).parent.name, Path(folder).name
            out[f"{name}:{version}"] = reason
            out[name] = reason  # the highest refused version wins (sorted above)
        latest = self.latest()
        return {spec: reason for spec, reason in out.items() if ":" in spec or spec not in latest}

    def fingerprint(self) -> tuple:
        """Changes whenever a sound bundle or a refusal (and its reason) changes."""
        return (tuple(sorted((k, b.manifest["files"]["model.onnx"]) for k, b in self.bundles.items())),
                tuple(sorted(self.refused_models().items())))


def resolve_key(spec, latest: dict, known, refused: dict = None) -> str:
    """Turn ``'name'`` or ``'name:version'`` into a known ``'name:version'`` key.

    ``refused`` (``Registry.refused_models()``) turns "unknown model" into the refusal reason.
    """
    spec = (spec or "").strip()
    key = spec if ":" in spec else latest.get(spec)
    if key is None or key not in known:
        available = ", ".join(sorted(latest)) or "none (run `sqlext models import` or `sqlext train`)"
        if refused and spec in refused:
            raise UnknownModel(f"model {spec!r} was refused: {refused[spec]}; available models: {available}")
        raise UnknownModel(f"unknown model {spec!r}; available models: {available}")
    return key


def _version_order(folder: str) -> tuple:
    path = Path(folder)
    return (path.parent.name, int(path.name) if path.name.isdigit() else -1)


# folder -> (signature, Bundle or refusal reason); only the model watcher's thread scans in a server
_LOADED = {}
_SETTLE_NS = 2_000_000_000  # a file changed this recently is re-verified on the next scan too


def _signature(folder: Path):
    """(name, inode, size, mtime_ns, ctime_ns) of every entry, symlink targets included; None if unreadable.

    ctime cannot be set by users, so a file rewritten with its old size and mtime still changes it.
    """
    rows = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                stats = [entry.stat(follow_symlinks=False)]
                if entry.is_symlink():
                    try:
                        stats.append(entry.stat())
                    except OSError:
                        pass
                rows.append((entry.name, *[(s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for s in stats]))
    except OSError:
        return None
    return tuple(sorted(rows))


def _load_cached(folder: Path):
    """``bundle.load(folder)``, or the refusal reason (a str), re-verified only when the folder changed.

    Unchanged means the same signature as at the last verification, and no timestamp in it newer
    than ``_SETTLE_NS`` before that verification (a write within the filesystem's timestamp
    granularity could otherwise go unnoticed).  A refusal is logged once, when it is found.
    """
    signature, started = _signature(folder), time.time_ns()
    cached = _LOADED.get(str(folder))
    if signature is not None and cached is not None and cached[0] == signature:
        return cached[1]
    try:
        outcome = _bundle.load(folder)
    except _bundle.BundleError as exc:
        outcome = str(exc)
        log.error("%s", exc)
    newest = max((t for row in signature or () for stat in row[1:] for t in stat[2:]), default=0)
    if signature is not None and newest < started - _SETTLE_NS:
        _LOADED[str(folder)] = (signature, outcome)
    else:
        _LOADED.pop(str(folder), None)
    return outcome
