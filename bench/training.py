"""Training: `sqlext train` (featurize once on Spark + BigDL head) vs the seed's way, same data and settings.

The seed's way trains the same head (Linear, Adam, batch 32, 25 epochs, lr 1e-3) in PyTorch and runs
the frozen EfficientNet-Lite0 backbone forward on every training image in every epoch (decoding it
again each time, as a DataLoader over image files does).  Data: a Fashion-MNIST subset written as
PNG files (training/fashion.py; Debian's dataset-fashion-mnist), train and validation from the
dataset's separate train and test splits.
"""
import re
import time
from pathlib import Path

from .common import log, sqlext

CLASSES = ("pullover", "sneaker", "sandal")
TRAIN_PER_CLASS = 60
VAL_PER_CLASS = 100
EPOCHS = 25
BATCH = 32
LEARNING_RATE = 1e-3


def prepare(root: Path) -> dict:
    from training import fashion

    if not (root / "train").exists():
        fashion.write_subset(root, TRAIN_PER_CLASS, VAL_PER_CLASS, CLASSES)
    return {split: sorted((root / split).rglob("*.png")) for split in ("train", "val")}


def _tensor(path: Path, pre: dict):
    from PIL import Image

    from bench.torch_model import pil_tensor

    return pil_tensor(Image.open(path).convert("RGB"), pre)


def seed_way(files: dict, epochs: int = EPOCHS, seed: int = 42) -> dict:
    import numpy as np
    import torch

    from training import backbones

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    backbone = backbones.load("efficientnet-lite0")
    pre = dict(backbone.preprocess, mean=np.asarray(backbone.preprocess["mean"], np.float32),
               std=np.asarray(backbone.preprocess["std"], np.float32))
    labels = sorted({p.parent.name for p in files["train"]})
    y_train = torch.tensor([labels.index(p.parent.name) for p in files["train"]])
    head = torch.nn.Linear(backbone.feature_size, len(labels))
    optimizer = torch.optim.Adam(head.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(files["train"]))
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            x = torch.stack([_tensor(files["train"][i], pre) for i in idx])
            with torch.no_grad():
                features = backbone.featurizer(x)
            loss = loss_fn(head(features), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(files["val"]), 64):
            batch = files["val"][start:start + 64]
            x = torch.stack([_tensor(p, pre) for p in batch])
            predicted = head(backbone.featurizer(x)).argmax(1)
            correct += sum(int(labels[int(k)] == p.parent.name) for k, p in zip(predicted, batch))
    return {"seconds": time.perf_counter() - started, "accuracy": correct / len(files["val"])}


def sqlext_train(home: Path, root: Path, name: str = "fashionbench", args=(), env=None) -> dict:
    started = time.perf_counter()
    out = sqlext(home, "train", "--images", root / "train", "--validation", root / "val", "--name", name,
                 "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--learning-rate", str(LEARNING_RATE),
                 "--master", "local[2]", *args, env=env)
    seconds = time.perf_counter() - started
    accuracy = float(re.search(r"validation accuracy ([0-9.]+)", out).group(1))
    feat = re.search(r"featurized (\d+) image\(s\) with \S+ in ([0-9.]+)s", out)
    head = re.search(r"trained the head .* in ([0-9.]+)s", out)
    return {"seconds": seconds, "accuracy": accuracy, "output": out[-2000:],
            "featurized": int(feat.group(1)) if feat else None,
            "featurize_s": float(feat.group(2)) if feat else None,
            "head_s": float(head.group(1)) if head else None}


# the levers `sqlext train` pulls, each measured by turning it off in one more run
VARIANTS = {"distributed_head": {"args": ("--head-optimizer", "distributed")},
            "no_class_archive": {"env": {"SQLEXT_CLASS_ARCHIVE": "off"}}}


def run(work: Path, runs: int = 1, serving_rate: float = None, variants: bool = True) -> dict:
    """``variants``: also time ``sqlext train`` with each of its levers off (``VARIANTS``)."""
    root = work / "fashion"
    files = prepare(root)
    home = work / "home"
    log(f"  sqlext train on {len(files['train'])} + {len(files['val'])} images, {EPOCHS} epochs")
    ours = sqlext_train(home, root)
    log(f"  sqlext train: {ours['seconds']:.0f}s, accuracy {ours['accuracy']:.3f}")
    measured = {}
    for label, how in (VARIANTS.items() if variants else ()):
        measured[label] = sqlext_train(home, root, args=how.get("args", ()), env=how.get("env"))
        log(f"  sqlext train, {label}: {measured[label]['seconds']:.0f}s (head {measured[label]['head_s']}s), "
            f"accuracy {measured[label]['accuracy']:.3f}")
    log("  the seed's way (backbone forward on every image in every epoch)")
    seed = seed_way(files)
    log(f"  seed's way: {seed['seconds']:.0f}s, accuracy {seed['accuracy']:.3f}")
    n_total = len(files["train"]) + len(files["val"])
    featurize_rate = ours["featurized"] / ours["featurize_s"] if ours.get("featurize_s") else None
    result = {"seed_s": seed["seconds"], "sqlext_s": ours["seconds"], "ratio": seed["seconds"] / ours["seconds"],
              "seed_accuracy": seed["accuracy"], "sqlext_accuracy": ours["accuracy"],
              "train_images": len(files["train"]), "val_images": len(files["val"]), "head_s": ours["head_s"],
              "variants": {k: {f: v[f] for f in ("seconds", "accuracy", "head_s")} for k, v in measured.items()},
              "featurize_img_per_s": featurize_rate, "serving_img_per_s": serving_rate,
              "featurize_ratio": featurize_rate / serving_rate if featurize_rate and serving_rate else None}
    per_image_epoch = seed["seconds"] / (EPOCHS * len(files["train"]) + len(files["val"]))
    fixed = ours["seconds"] - (n_total / featurize_rate if featurize_rate else 0)
    notes = [f"{len(files['train'])} training + {len(files['val'])} validation images "
             f"({', '.join(CLASSES)}), {EPOCHS} epochs, batch {BATCH}, Adam lr {LEARNING_RATE}, both on the "
             "2 cores.",
             f"`sqlext train` wall time (its driver JVM mapping the class archive the setup's first command wrote) "
             f"includes starting Spark and BigDL, featurizing once "
             f"({ours.get('featurize_s')} s), the head, the ONNX export and its check: ~{fixed:.0f} s that do not "
             "grow with the data set.",
             f"The seed's way costs ~{per_image_epoch * 1000:.0f} ms per image per epoch here; the ratio grows "
             f"with the data: at N training images it is about (25·N·{per_image_epoch:.3f}) / ({fixed:.0f} + "
             f"N/{featurize_rate or 0:.0f}), i.e. 10× from about N ≈ "
             + (f"{int(10 * fixed / max(1e-9, 25 * per_image_epoch - 10 / featurize_rate))}" if featurize_rate and
                25 * per_image_epoch > 10 / featurize_rate else "never") + " images."]
    result["notes"] = notes
    return result
