"""Where sqlext keeps its state (everything under ``$SQLEXT_HOME``) and its derived files (the cache folder)."""
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls, override=None):
        root = override or os.environ.get("SQLEXT_HOME") or ".sqlext"
        return cls(Path(root).expanduser().resolve())

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def metastore(self) -> Path:
        return self.root / "metastore_db"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> "Home":
        for path in (self.models, self.warehouse, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        return self


def cache_folder() -> Path:
    """Files derived from the installed software, shared by every $SQLEXT_HOME of this user: sqlext's compiled
    jar and the JVM's class archive.  ``$SQLEXT_CACHE_DIR``, else ``$XDG_CACHE_HOME/sqlext`` (~/.cache/sqlext)."""
    root = os.environ.get("SQLEXT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "sqlext"
    return Path(root).expanduser().resolve()
