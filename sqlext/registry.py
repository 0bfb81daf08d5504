"""Find the bundles under a models folder and resolve ``'name'`` / ``'name:version'``."""
import logging
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
                try:
                    loaded = _bundle.load(folder)
                except _bundle.BundleError as exc:
                    found.refused[str(folder)] = str(exc)
                    log.error("%s", exc)
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
        return self.bundles[resolve_key(spec, self.latest(), self.bundles)]

    def fingerprint(self) -> tuple:
        return tuple(sorted((k, b.manifest["files"]["model.onnx"]) for k, b in self.bundles.items()))


def resolve_key(spec, latest: dict, known) -> str:
    """Turn ``'name'`` or ``'name:version'`` into a known ``'name:version'`` key."""
    spec = (spec or "").strip()
    key = spec if ":" in spec else latest.get(spec)
    if key is None or key not in known:
        available = ", ".join(sorted(latest)) or "none (run `sqlext models import` or `sqlext train`)"
        raise UnknownModel(f"unknown model {spec!r}; available models: {available}")
    return key
