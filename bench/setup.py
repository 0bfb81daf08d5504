"""Benchmark fixtures, made through the real `sqlext` CLI: images, bundles (fp32 and int8), the Hive table."""
import json
import shutil
from pathlib import Path

from sqlext import samples

from . import data
from .common import log, sqlext

# natural photos beside the sample photos, for calibration only (never in the benchmark table)
EXTRA_PHOTOS = [("skimage", "data/motorcycle_left.png"), ("skimage", "data/hubble_deep_field.jpg"),
                ("skimage", "data/retina.jpg"), ("skimage", "data/ihc.png")]


def calibration_images(folder: Path, count: int = 96) -> Path:
    """Web-sized variants (other seeds than the table's) of the sample photos and 4 more photos."""
    folder.mkdir(parents=True, exist_ok=True)
    extra = folder / "_sources"
    extra.mkdir(exist_ok=True)
    for package, inner in EXTRA_PHOTOS:
        target = extra / Path(inner).name
        if not target.exists():
            shutil.copyfile(samples._package_dir(package) / inner, target)
    data.generate(folder, count, seed=1000, sizes=[(640, 480), (800, 600)], extra_sources=sorted(extra.iterdir()))
    return folder / "images"


def random_resnet50_weights(path: Path) -> Path:
    """A torchvision-format ResNet-50 state_dict with random weights: the compute cost of real ones."""
    if not path.exists():
        import torch

        from training.resnet import ResNet50

        torch.manual_seed(0)
        torch.save(ResNet50().state_dict(), path)
    return path


def bundles(home: Path, work: Path, calibration: Path, validation: Path) -> dict:
    """Import Lite0 and ResNet-50, quantize both; return what serves each and the quantization outcome."""
    out = {}
    weights = random_resnet50_weights(work / "resnet50_random.pth")
    for name, args in (("lite0", ["efficientnet-lite0"]), ("resnet50", ["resnet50", "--weights", weights])):
        if not (home / "models" / name).exists():
            log(f"import {name}")
            sqlext(home, "models", "import", *args, "--name", name)
        manifests = sorted((home / "models" / name).glob("*/manifest.json"), key=lambda p: int(p.parent.name))
        fp32 = json.loads(manifests[0].read_text())
        quantized = [json.loads(p.read_text()) for p in manifests if "quantization" in json.loads(p.read_text())]
        result = {"fp32": f"{name}:{fp32['version']}"}
        if quantized:
            result.update(int8=f"{name}:{quantized[-1]['version']}", quantization=quantized[-1]["quantization"])
        else:
            log(f"quantize {name} (calibration {calibration}, validation {validation})")
            try:
                text = sqlext(home, "models", "quantize", f"{name}:{fp32['version']}", "--calibration", calibration,
                              "--validation", validation, "--calibration-images", "96",
                              "--validation-images", "1000")
                info = json.loads(text.strip().splitlines()[-1])
                manifest = json.loads((home / "models" / name / info["key"].split(":")[1] / "manifest.json").read_text())
                result.update(int8=info["key"], quantization=manifest["quantization"])
            except RuntimeError as exc:
                message = str(exc)
                line = next((l for l in message.splitlines() if "agree" in l), message.splitlines()[-1])
                result.update(int8=None, rejected=line.strip())
        result["serving"] = result.get("int8") or result["fp32"]
        out[name] = result
        log(f"{name}: serving {result['serving']} ({'int8' if result.get('int8') else 'fp32'})")
    return out


def cache_model_copies(home: Path, source_key: str, count: int) -> list:
    """``count`` copies of a bundle under new names: identical model, distinct cache keys (cold caches)."""
    from sqlext import bundle as _bundle

    name, version = source_key.split(":")
    src = home / "models" / name / version
    manifest = json.loads((src / "manifest.json").read_text())
    keys = []
    for i in range(count):
        copy = f"{name}cold{i}"
        if not (home / "models" / copy).exists():
            body = {k: v for k, v in manifest.items() if k not in ("name", "version", "created", "files")}
            _bundle.write(home / "models", copy, src, body)
        keys.append(copy)
    return keys
