"""Where sqlext keeps its state: everything lives under ``$SQLEXT_HOME``."""
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
