"""`sqlext models quantize NAME`: int8 post-training quantization of a bundle, as its next version.

The bundle's float32 ``model.onnx`` is quantized with ONNX Runtime's ``quantize_static``: QDQ
format, int8 weights per output channel, uint8 activations, MinMax ranges calibrated on real
images decoded exactly as serving decodes them (``sqlext.image``).  The classifier head (the last
Gemm/MatMul and the Softmax) stays float32, so probabilities keep their resolution.  OpenVINO
runs the QDQ graph with int8 kernels (VNNI/AMX where the CPU has them).

The result is published only if, on validation images that were not used for calibration, its
top-1 label agrees with the float32 model's on at least ``--min-agreement`` of them (default
0.99), both run by the serving engine.  The measured agreement is stored in the manifest
(``quantization.top1_agreement``), with what it was calibrated and validated on.

Calibration images: ``--calibration DIR|DB.TABLE``, else the images the bundle was trained on
(``training.images`` in its manifest).  Validation: ``--validation DIR|DB.TABLE``, else other
images of the calibration source.  Registered as ``models quantize`` through the
``sqlext.commands`` entry point (``add_quantize_command``).
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sqlext import bundle as _bundle

CALIBRATION_IMAGES = 128
VALIDATION_IMAGES = 256
MIN_AGREEMENT = 0.99
HEAD_OPS = {"Gemm", "MatMul", "Add", "Softmax", "Flatten", "Reshape", "Identity"}
METHOD = ("onnxruntime quantize_static: QDQ, int8 symmetric per-channel weights, uint8 activations, "
          "MinMax calibration; head (last Gemm/MatMul + Softmax) kept float32")


class QuantizeError(SystemExit):
    """A quantization that cannot be done or does not meet the agreement bar (exit status 1)."""

    def __init__(self, message):
        super().__init__(f"error: {message}")


# ----------------------------------------------------------------------------------- image sources
def _is_table(source: str) -> bool:
    from training.data import is_table

    return is_table(source)


def _folder_images(folder) -> list:
    from training.data import IMAGE_EXTENSIONS

    root = Path(folder)
    if not root.is_dir():
        raise QuantizeError(f"no such folder: {folder}")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))


def _table_contents(home, table: str, limit: int, seed: int) -> list:
    """Up to ``limit`` image contents of a Hive table (needs the metastore: stop a Derby `serve` first)."""
    from sqlext.ingest import parse_table
    from sqlext.session import start

    db, name = parse_table(table)
    spark = start(home, "sqlext-quantize")
    try:
        from pyspark.sql import functions as F

        rows = (spark.table(f"`{db}`.`{name}`").select("content").where("content IS NOT NULL")
                .orderBy(F.rand(seed)).limit(limit).collect())
    finally:
        spark.stop()
    return [bytes(r[0]) for r in rows]


def _contents(home, source: str, count: int, seed: int, skip: int = 0) -> list:
    """``count`` image contents from ``source`` (folder or table), in a seeded random order after ``skip``."""
    if _is_table(source):
        return _table_contents(home, source, skip + count, seed)[skip:]
    paths = _folder_images(source)
    random.Random(seed).shuffle(paths)
    return [p.read_bytes() for p in paths[skip:skip + count]]


def _tiles(contents: list, preprocess: dict) -> np.ndarray:
    """Decode like serving does; undecodable images are skipped."""
    from sqlext.image import DecodeError, decode

    tiles = []
    for content in contents:
        try:
            tiles.append(decode(content, int(preprocess["resize"]), int(preprocess["crop"])))
        except DecodeError:
            continue
    if not tiles:
        raise QuantizeError("none of the calibration/validation images could be decoded")
    return np.stack(tiles)


def _normalised(tiles: np.ndarray, preprocess: dict) -> np.ndarray:
    """uint8 NHWC tiles -> the bundle's ONNX input (float32 NCHW, normalised, in the bundle's channel order)."""
    from sqlext.preprocess import model_input

    return model_input(tiles, preprocess)


# ----------------------------------------------------------------------------------- quantization
def _head_nodes(model) -> list:
    """Names of the nodes from the graph output back through the classifier head (kept float32)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    keep, todo = [], [o.name for o in model.graph.output]
    while todo:
        node = producers.get(todo.pop())
        if node is None or node.op_type not in HEAD_OPS or node.name in keep:
            continue
        keep.append(node.name)
        if node.op_type in ("Gemm", "MatMul"):
            continue  # the head's input is the featurizer's output: stop here
        todo.extend(node.input)
    return keep


class _Reader:
    """ONNX Runtime calibration data: the normalised tiles, 8 images per batch."""

    def __init__(self, input_name: str, batches: np.ndarray):
        self.input_name, self.batches, self.i = input_name, batches, 0

    def get_next(self):
        if self.i >= len(self.batches):
            return None
        start = self.i
        self.i += 8
        return {self.input_name: self.batches[start:start + 8]}

    def rewind(self):
        self.i = 0


def quantize_onnx(fp32_path: Path, int8_path: Path, calibration: np.ndarray) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001 - pre-processing is an optimisation; quantize the graph as it is
            prepared = fp32_path
        model = onnx.load(str(prepared))
        input_name = model.graph.input[0].name
        quantize_static(str(prepared), str(int8_path), _Reader(input_name, calibration),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=_head_nodes(model))


def top1_agreement(fp32_bytes: bytes, int8_bytes: bytes, preprocess: dict, tiles: np.ndarray) -> dict:
    """Run both graphs with the serving engine (on every core: nothing else runs beside this command);
    share of equal top-1 labels and probability drift."""
    from sqlext.engine import Engine

    cores = os.cpu_count() or 1
    a, b = Engine(fp32_bytes, preprocess, threads=cores), Engine(int8_bytes, preprocess, threads=cores)
    pa = np.concatenate([a.predict(tiles[i:i + 16]) for i in range(0, len(tiles), 16)])
    pb = np.concatenate([b.predict(tiles[i:i + 16]) for i in range(0, len(tiles), 16)])
    ta, tb = pa.argmax(1), pb.argmax(1)
    return {"top1_agreement": round(float((ta == tb).mean()), 4), "images": int(len(tiles)),
            "mean_abs_top1_probability_diff": round(float(np.abs(pa.max(1) - pb[np.arange(len(tb)), ta]).mean()), 4)}


def quantize_bundle(home, spec: str, calibration: str = None, validation: str = None,
                    calibration_images: int = CALIBRATION_IMAGES, validation_images: int = VALIDATION_IMAGES,
                    min_agreement: float = MIN_AGREEMENT, seed: int = 0, name: str = None, say=print):
    """Quantize bundle ``spec`` ('name' or 'name:version'); publish and return the new Bundle.

    Raises QuantizeError (nothing published) if the agreement is below ``min_agreement``.
    """
    from sqlext.registry import Registry, UnknownModel

    try:
        source = Registry.scan(home.models).resolve(spec)
    except UnknownModel as exc:
        raise QuantizeError(str(exc)) from None
    manifest = source.manifest
    if manifest.get("quantization"):
        raise QuantizeError(f"{source.key} is already quantized ({manifest['quantization']['method'][:40]}...)")
    preprocess = manifest["preprocess"]
    calibration = calibration or (manifest.get("training") or {}).get("images")
    if not calibration:
        raise QuantizeError(f"{source.key} does not name the images it was trained on: give --calibration DIR|TABLE")
    started = time.monotonic()
    calib_contents = _contents(home, calibration, calibration_images, seed)
    if validation:
        val_contents = _contents(home, validation, validation_images, seed + 1)
    else:
        val_contents = _contents(home, calibration, validation_images, seed, skip=len(calib_contents))
    if not val_contents:
        raise QuantizeError(f"no validation images left in {calibration} after {len(calib_contents)} for "
                            "calibration: give --validation DIR|TABLE or fewer --calibration-images")
    calib_tiles = _tiles(calib_contents, preprocess)
    val_tiles = _tiles(val_contents, preprocess)
    say(f"quantizing {source.key}: calibrating on {len(calib_tiles)} image(s) from {calibration}")
    fp32_bytes = source.model_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp) / "bundle"
        out_dir.mkdir()
        quantize_onnx(source.path / _bundle.MODEL_FILE, out_dir / _bundle.MODEL_FILE,
                      _normalised(calib_tiles, preprocess))
        int8_bytes = (out_dir / _bundle.MODEL_FILE).read_bytes()
        check = top1_agreement(fp32_bytes, int8_bytes, preprocess, val_tiles)
        say(f"top-1 agreement with {source.key} (float32) on {check['images']} validation image(s): "
            f"{check['top1_agreement']:.2%} (bar {min_agreement:.0%}); "
            f"model {len(fp32_bytes) / 2**20:.1f} MB -> {len(int8_bytes) / 2**20:.1f} MB")
        if check["top1_agreement"] < min_agreement:
            raise QuantizeError(f"int8 model agrees with float32 on only {check['top1_agreement']:.2%} of "
                                f"{check['images']} validation images (< {min_agreement:.0%}); not published")
        for extra in source.path.iterdir():  # plots, reports: travel with the model they describe
            if extra.is_file() and extra.name not in (_bundle.MODEL_FILE, _bundle.MANIFEST):
                (out_dir / extra.name).write_bytes(extra.read_bytes())
        quantization = dict(check, method=METHOD, quantized_from=source.key,
                            calibration={"source": str(calibration), "images": int(len(calib_tiles))},
                            validation={"source": str(validation or calibration), "images": check["images"]},
                            min_agreement=min_agreement, seconds=round(time.monotonic() - started, 1))
        metrics = dict(manifest.get("metrics") or {})
        metrics["int8_top1_agreement"] = check["top1_agreement"]
        new_manifest = {k: v for k, v in manifest.items() if k not in ("name", "version", "created", "files")}
        new_manifest.update(metrics=metrics, quantization=quantization,
                            source=f"{manifest.get('source', source.key)}; int8 (models quantize)")
        return _bundle.write(home.models, name or source.name, out_dir, new_manifest)


# ----------------------------------------------------------------------------------- command line
def _models_subparsers(commands):
    """The `sqlext models` sub-command group (argparse keeps it in a private list; no public accessor)."""
    models = commands.choices.get("models")
    for action in getattr(models, "_actions", []):
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def add_quantize_command(commands) -> None:
    """`sqlext models quantize NAME` (or `sqlext quantize NAME` if the models group is not found)."""
    group = _models_subparsers(commands) or commands
    q = group.add_parser("quantize", help="int8 post-training quantization of a bundle, as its next version",
                         description=__doc__.split("\n\n")[0])
    q.add_argument("model", help="'name' (latest version) or 'name:version'")
    q.add_argument("--calibration", metavar="DIR|DB.TABLE",
                   help="calibration images (default: the images the bundle was trained on)")
    q.add_argument("--validation", metavar="DIR|DB.TABLE",
                   help="images to check top-1 agreement on (default: other images of --calibration)")
    q.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES,
                   help=f"images to calibrate on (default {CALIBRATION_IMAGES})")
    q.add_argument("--validation-images", type=int, default=VALIDATION_IMAGES,
                   help=f"images to check agreement on (default {VALIDATION_IMAGES})")
    q.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT,
                   help=f"publish only if top-1 agreement with float32 is at least this (default {MIN_AGREEMENT})")
    q.add_argument("--name", help="publish under another bundle name (default: the same name, next version)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_run)


def _run(args, home) -> int:
    try:
        published = quantize_bundle(home, args.model, args.calibration, args.validation, args.calibration_images,
                                    args.validation_images, args.min_agreement, args.seed, args.name)
    except QuantizeError as exc:
        print(exc.code, file=sys.stderr)
        return 1
    q = published.manifest["quantization"]
    print(f"published {published.key} (int8, top-1 agreement {q['top1_agreement']:.2%} on {q['images']} "
          f"images) -> {published.path}")
    print(json.dumps({"key": published.key, "top1_agreement": q["top1_agreement"]}))
    return 0
