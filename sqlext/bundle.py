"""The model bundle: the contract between training and serving.

A bundle is a folder ``models/<name>/<version>/`` holding ``model.onnx`` and
``manifest.json``.  ``model.onnx`` takes a float32 NCHW batch that is already
normalised as ``(pixel - mean) / std`` (pixels in 0..255, channels RGB unless the
manifest's ``preprocess`` says ``"channel_order": "bgr"``; see sqlext.preprocess) and
returns class probabilities ``[N, len(labels)]`` (softmax inside the graph).  The manifest
names every file with its sha256; loading refuses any mismatch.  No pickles.
"""
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .preprocess import channel_order

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
REQUIRED_KEYS = ("name", "version", "created", "labels", "backbone", "preprocess", "files", "metrics")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class BundleError(ValueError):
    """A bundle is missing, malformed, or its files do not match their checksums."""


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise BundleError(f"invalid model name {name!r}: use letters, digits, '_' or '-', starting with a letter")
    return name


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def labels(self) -> list:
        return list(self.manifest["labels"])

    @property
    def preprocess(self) -> dict:
        return dict(self.manifest["preprocess"])

    def model_bytes(self) -> bytes:
        return (self.path / MODEL_FILE).read_bytes()


def _safe_member(folder: Path, filename: str) -> Path:
    if not isinstance(filename, str) or filename != os.path.basename(filename) or filename in ("", ".", ".."):
        raise BundleError(f"bundle {folder}: file entry {filename!r} points outside the bundle folder")
    member = folder / filename
    # a symlink may only point at another file of the same folder
    if member.is_symlink() and member.resolve().parent != folder.resolve():
        raise BundleError(f"bundle {folder}: {filename} is a symlink that points outside the bundle folder")
    return member


def load(folder) -> Bundle:
    """Read and verify one bundle folder; raise BundleError with the reason if it is not sound."""
    folder = Path(folder)
    try:
        manifest = json.loads(_safe_member(folder, MANIFEST).read_text())
    except FileNotFoundError:
        raise BundleError(f"bundle {folder}: no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"bundle {folder}: unreadable {MANIFEST}: {exc}") from None
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise BundleError(f"bundle {folder}: manifest lacks {', '.join(missing)}")
    try:
        channel_order(manifest["preprocess"])
    except (AttributeError, ValueError) as exc:
        raise BundleError(f"bundle {folder}: bad preprocess in {MANIFEST}: {exc}") from None
    files = manifest["files"]
    if MODEL_FILE not in files:
        raise BundleError(f"bundle {folder}: manifest does not list {MODEL_FILE}")
    for filename, expected in files.items():
        member = _safe_member(folder, filename)
        if not member.is_file():
            raise BundleError(f"bundle {folder}: {filename} is missing")
        actual = sha256_file(member)
        if actual != expected:
            raise BundleError(
                f"bundle {folder}: {filename} sha256 is {actual[:12]}…, manifest says {str(expected)[:12]}… "
                "(the file was modified after the bundle was written); refusing to load it")
    return Bundle(folder, manifest)


def versions(models_dir, name: str) -> list:
    folder = Path(models_dir) / name
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def write(models_dir, name: str, source_dir, manifest: dict) -> Bundle:
    """Publish the files in ``source_dir`` as the next version of ``name``.

    The bundle is assembled in a hidden temporary folder beside its final place and
    renamed into place atomically, so a reader never sees a half-written bundle.
    ``manifest`` supplies labels, backbone, preprocess, metrics (and any extra keys);
    name, version, created and files are filled in here.
    """
    check_name(name)
    parent = Path(models_dir) / name
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    try:
        for item in Path(source_dir).iterdir():
            if item.is_file() and item.name != MANIFEST:
                shutil.copy2(item, staging / item.name)
        files = {p.name: sha256_file(p) for p in sorted(staging.iterdir()) if p.is_file()}
        if MODEL_FILE not in files:
            raise BundleError(f"{source_dir} has no {MODEL_FILE}")
        while True:
            version = max(versions(models_dir, name), default=0) + 1
            body = dict(manifest, name=name, version=version, files=files,
                        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
            body.setdefault("metrics", {})
            (staging / MANIFEST).write_text(json.dumps(body, indent=2) + "\n")
            try:
                os.rename(staging, parent / str(version))
                return load(parent / str(version))
            except OSError:
                if not (parent / str(version)).exists():
                    raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
