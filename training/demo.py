"""The `make demo` fine-tuning step (the `sqlext.demo` entry point `fashion`).

Writes a Fashion-MNIST subset (sneaker vs sandal) as PNG files, ingests it into Hive tables and
fine-tunes the `fashion` bundle from the table with `sqlext train`; the `sql/examples/2*_fashion_*.sql`
scripts then query it.  Runs before `sqlext serve` starts: embedded Derby admits one process.
"""
from . import fashion

TRAIN_PER_CLASS = 300
VAL_PER_CLASS = 100
CLASSES = ("sneaker", "sandal")


def fine_tune_step(home, sh, step) -> None:
    """``sh(*args)`` runs the `sqlext` CLI; ``step(title)`` prints a heading (see sqlext/demo.py)."""
    from sqlext.registry import Registry

    root = home.root / "samples" / "fashion"
    step(f"write {' vs '.join(CLASSES)} images from Fashion-MNIST as PNG files ({root}/{{train,val}}/<class>/)")
    written = fashion.write_subset(root, TRAIN_PER_CLASS, VAL_PER_CLASS, CLASSES)
    print("  " + ", ".join(f"{folder}: {n}" for folder, n in written.items()))
    step("ingest them as PNG bytes, labelled by folder: demo.fashion (training), demo.fashion_val (held out)")
    sh("ingest", root / "train", "--table", "demo.fashion", "--label-from-dir")
    sh("ingest", root / "val", "--table", "demo.fashion_val", "--label-from-dir")
    if "fashion" in Registry.scan(home.models).names():
        step("the fashion bundle exists; `sqlext train ... --name fashion` would publish its next version")
        return
    step("fine-tune: EfficientNet-Lite0 features on Spark, a new head trained with BigDL, one ONNX bundle")
    sh("train", "--table", "demo.fashion", "--validation", "demo.fashion_val", "--name", "fashion")
