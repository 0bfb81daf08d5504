"""`sqlext train` and `sqlext models import resnet50`: real Spark, real BigDL, real Fashion-MNIST images."""
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from conftest import sqlext_cmd
from sqlext import bundle
from sqlext.config import Home
from sqlext.image import decode

TRAIN_PER_CLASS, VAL_PER_CLASS = 24, 12


def write_fashion(root: Path, corrupt: int = 0) -> tuple:
    """sneaker vs sandal PNGs under root/{train,val}/<class>/, plus ``corrupt`` undecodable .png files."""
    from training import fashion

    fashion.write_subset(root, TRAIN_PER_CLASS, VAL_PER_CLASS)
    for i in range(corrupt):
        (root / "train" / "sneaker" / f"corrupt-{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40 * (i + 1))
    return root / "train", root / "val"


def tiles_of(paths, preprocess) -> np.ndarray:
    return np.stack([decode(Path(urlparse(p).path).read_bytes(), preprocess["resize"], preprocess["crop"])
                     for p in paths])


def onnx_runtime_probabilities(model_path, tiles, preprocess) -> np.ndarray:
    """The bundle contract, applied by hand: (pixel - mean) / std, NCHW float32, through ONNX Runtime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    batch = (tiles.astype(np.float32) - np.float32(preprocess["mean"])) / np.float32(preprocess["std"])
    return session.run(None, {session.get_inputs()[0].name: batch.transpose(0, 3, 1, 2).copy()})[0]


@pytest.fixture(scope="module")
def fashion_images(tmp_path_factory):
    return write_fashion(tmp_path_factory.mktemp("fashion"), corrupt=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fashion_images):
    """One fine-tuning run in this process (so the test can reach the BigDL head), 10 epochs."""
    from training import spark as training_spark
    from training.train import TrainConfig, train

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    train_dir, val_dir = fashion_images
    home = Home(tmp_path_factory.mktemp("train_home")).ensure()
    said = []
    spark = training_spark.start(home, "local[2]", hive=False)
    try:
        result = train(spark, home, TrainConfig(name="fashion", images=str(train_dir), validation=str(val_dir),
                                                epochs=10, seed=7), say=said.append)
    finally:
        spark.stop()
    return home, result, "\n".join(said)


def test_fine_tuned_head_separates_sneakers_from_sandals(trained):
    home, result, said = trained
    assert result.labels == ["sandal", "sneaker"]
    assert result.metrics["accuracy"] >= 0.8, said
    assert result.metrics["validation_images"] == 2 * VAL_PER_CLASS
    assert sum(sum(row) for row in result.metrics["confusion_matrix"]["rows_true_columns_predicted"]) == 24
    assert set(result.metrics["per_class"]) == {"sandal", "sneaker"}
    assert len(result.head.train_loss) == 10 and len(result.head.val_loss) == 10
    assert result.head.train_loss[-1] < result.head.train_loss[0]
    assert result.head.optimizer == "local"  # a few dozen feature vectors: BigDL's LocalOptimizer on the driver
    assert "validation accuracy" in said and "confusion matrix" in said


def test_unreadable_images_are_skipped_and_counted(trained):
    _, result, said = trained
    assert sum(result.skipped.values()) == 2
    assert "skipped 2 unreadable image(s)" in said
    assert result.bundle.manifest["training"]["skipped_unreadable"] == 2
    assert result.bundle.manifest["training"]["train_images"] == 2 * TRAIN_PER_CLASS


def test_bundle_holds_one_graph_plots_and_metrics(trained):
    home, result, _ = trained
    loaded = bundle.load(home.models / "fashion" / "1")
    assert loaded.key == "fashion:1" and loaded.labels == ["sandal", "sneaker"]
    assert set(loaded.manifest["files"]) == {"model.onnx", "confusion_matrix.png", "training_curve.png"}
    for picture in ("confusion_matrix.png", "training_curve.png"):
        assert (loaded.path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert loaded.manifest["backbone"] == "efficientnet-lite0"
    assert loaded.manifest["metrics"]["summary"]["val_accuracy"] == result.metrics["accuracy"]
    assert loaded.manifest["metrics"]["export_max_abs_diff"] <= 1e-4
    assert loaded.manifest["training"]["head_optimizer"] == "local"
    assert loaded.manifest["metrics"]["train_loss_per_epoch"] == [round(x, 5) for x in result.head.train_loss]


def test_distributed_head_is_nnclassifier_on_the_executors(tmp_path, fashion_images, trained):
    """--head-optimizer distributed: the same head trained by NNClassifier (BigDL's DistriOptimizer)."""
    from training import spark as training_spark
    from training.train import TrainConfig, train

    train_dir, val_dir = fashion_images
    home = Home(tmp_path / "home").ensure()
    spark = training_spark.start(home, "local[2]", hive=False)
    try:
        result = train(spark, home, TrainConfig(name="fashion", images=str(train_dir), validation=str(val_dir),
                                                epochs=10, seed=7, head_optimizer="distributed"), say=lambda _: None)
    finally:
        spark.stop()
    assert result.head.optimizer == "distributed"
    assert result.metrics["accuracy"] >= 0.8
    assert len(result.head.train_loss) == 10 and len(result.head.val_loss) == 10
    assert result.head.train_loss[-1] < result.head.train_loss[0]
    local = trained[1]
    assert abs(result.metrics["accuracy"] - local.metrics["accuracy"]) <= 0.1  # same model, same data
    assert bundle.load(home.models / "fashion" / "1").manifest["training"]["head_optimizer"] == "distributed"


def test_folder_precheck_counts_what_spark_reads(tmp_path, fashion_images):
    """`sqlext train` checks a folder's classes before Spark starts: it must count the files Spark reads."""
    import shutil

    from training import data
    from training import spark as training_spark

    folder = tmp_path / "images"
    shutil.copytree(fashion_images[0], folder)
    (folder / "sandal" / ".hidden.png").write_bytes(b"not read")
    (folder / "sandal" / "notes.txt").write_text("not an image")
    (folder / "sandal" / "odd-case.Png").write_bytes(b"Spark's glob is case-sensitive")
    (folder / "sneaker" / "_SUCCESS").write_text("")
    (folder / "loose.png").write_bytes(b"in no class folder")
    (folder / "sneaker" / "nested").mkdir()
    shutil.copy(next((folder / "sneaker").glob("*.png")), folder / "sneaker" / "nested" / "again.PNG")
    spark = training_spark.start(Home(tmp_path / "home").ensure(), "local[1]", hive=False)
    try:
        by_spark = data.class_counts(data.read_folder(spark, folder))
    finally:
        spark.stop()
    assert data.scan_folder(folder) == by_spark
    assert by_spark["sneaker"] == TRAIN_PER_CLASS + 2 + 1  # the corrupt files count: they are images to read


def test_auto_head_optimizer_collects_only_what_fits_the_driver():
    from training.head import LOCAL_FEATURE_BYTES, choose_optimizer

    fits = LOCAL_FEATURE_BYTES // (1280 * 4)
    assert choose_optimizer("auto", fits, 1280) == "local"
    assert choose_optimizer("auto", fits + 1, 1280) == "distributed"
    assert choose_optimizer("distributed", 10, 1280) == "distributed"
    with pytest.raises(ValueError, match="head optimizer"):
        choose_optimizer("gpu", 10, 1280)


def test_exported_graph_reproduces_the_trained_head(trained):
    """model.onnx (backbone + head + softmax) == softmax(BigDL head(features)) on every validation image."""
    _, result, _ = trained
    preprocess = result.bundle.preprocess
    tiles = tiles_of(result.val_paths, preprocess)
    head = result.head.probabilities(result.val_features)
    np.testing.assert_allclose(head, result.val_probabilities, atol=1e-6)
    np.testing.assert_allclose(head.sum(axis=1), 1.0, atol=1e-5)
    by_onnx_runtime = onnx_runtime_probabilities(result.bundle.path / "model.onnx", tiles, preprocess)
    assert np.abs(by_onnx_runtime - head).max() <= 1e-4
    # and what serving computes from the same bytes
    from sqlext.engine import Engine

    served = Engine(result.bundle.model_bytes(), preprocess).predict(tiles)
    assert np.abs(served - head).max() <= 1e-4


def test_head_weights_are_the_exported_ones(trained):
    import onnx
    from onnx import numpy_helper

    _, result, _ = trained
    graph = onnx.load(str(result.bundle.path / "model.onnx")).graph
    arrays = [numpy_helper.to_array(t) for t in graph.initializer]
    assert any(a.shape == result.head.weight.shape and np.allclose(a, result.head.weight) for a in arrays)


def _torchvision_like_resnet50(seed=0):
    import torch

    from training.resnet import ResNet50

    torch.manual_seed(seed)
    net = ResNet50().eval()
    with torch.no_grad():  # non-trivial BN statistics and a head that does not saturate the softmax
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
        net.fc.weight.normal_(0, 0.01)
    return net


def test_resnet50_state_dict_has_torchvision_layout():
    from training.resnet import ResNet50

    state = ResNet50().state_dict()
    # facts of torchvision.models.resnet50().state_dict()
    assert len(state) == 320
    assert sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                                       "num_batches_tracked"))) == 25_557_032
    shapes = {"conv1.weight": (64, 3, 7, 7), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
              "layer2.0.conv2.weight": (128, 128, 3, 3), "layer3.5.bn3.running_var": (1024,),
              "layer4.2.conv3.weight": (2048, 512, 1, 1), "fc.weight": (1000, 2048), "fc.bias": (1000,)}
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key


def test_resnet50_import_loads_strictly_and_serves(tmp_path):
    import torch

    net = _torchvision_like_resnet50()
    weights = tmp_path / "resnet50.pth"
    torch.save(net.state_dict(), weights)
    home = Home(tmp_path / "home").ensure()
    out = sqlext_cmd(home.root, "models", "import", "resnet50", "--weights", weights, "--name", "r50")
    assert "imported r50:1 (1000 labels)" in out.stdout
    loaded = bundle.load(home.models / "r50" / "1")
    assert loaded.manifest["backbone"] == "resnet50" and len(loaded.labels) == 1000
    assert loaded.preprocess["mean"] == [123.675, 116.28, 103.53]

    from sqlext import samples
    from sqlext.engine import Engine

    photos = tmp_path / "photos"
    samples.copy_sample_photos(photos)
    tiles = np.stack([decode(p.read_bytes(), 256, 224) for p in sorted(photos.iterdir())[:3]])
    mean, std = np.float32(loaded.preprocess["mean"]), np.float32(loaded.preprocess["std"])
    normalised = (tiles.astype(np.float32) - mean) / std
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(normalised.transpose(0, 3, 1, 2).copy())), dim=1).numpy()
    served = Engine(loaded.model_bytes(), loaded.preprocess).predict(tiles)
    assert expected.max() < 0.9  # the check below compares spread-out probabilities, not one-hot ones
    assert np.abs(served - expected).max() <= 1e-4


def test_resnet50_weights_that_do_not_fit_are_refused(tmp_path):
    import torch

    from training import backbones

    state = _torchvision_like_resnet50().state_dict()
    state.pop("layer3.2.bn1.running_mean")
    state["layer9.weight"] = torch.zeros(1)
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(SystemExit) as refused:
        backbones.resnet50(broken)
    assert "layer3.2.bn1.running_mean" in str(refused.value) and "layer9.weight" in str(refused.value)
    (tmp_path / "not_torch.pth").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(SystemExit, match="not a torch state_dict"):
        backbones.resnet50(tmp_path / "not_torch.pth")


# -- bad input through the real command: a clear message on stderr, exit code != 0, no traceback

def _refused(result, *fragments):
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-3000:]


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "images" / "sneaker").mkdir(parents=True)
    _refused(sqlext_cmd(tmp_path / "home", "train", "--images", tmp_path / "images", "--name", "x", check=False),
             "holds no images in class sub-folders")


def test_single_class_is_a_clear_error(tmp_path, fashion_images):
    only = tmp_path / "images" / "sneaker"
    only.mkdir(parents=True)
    for png in sorted((fashion_images[0] / "sneaker").glob("train-*.png"))[:3]:
        (only / png.name).write_bytes(png.read_bytes())
    _refused(sqlext_cmd(tmp_path / "home", "train", "--images", tmp_path / "images", "--name", "x", check=False),
             "single class", "'sneaker' (3 images)")


def test_bigdl_model_and_missing_resnet_weights_are_clear_errors(tmp_path, fashion_images):
    """--bigdl-model itself works (tests/test_bigdl_model.py); mixed with the other backbones it is refused."""
    train_dir = fashion_images[0]
    model = tmp_path / "m.bigdl"
    model.write_bytes(b"checked later")
    _refused(sqlext_cmd(tmp_path / "home", "train", "--images", train_dir, "--name", "x", "--bigdl-model", model,
                        "--backbone", "resnet50", check=False), "--bigdl-model replaces --backbone/--weights")
    _refused(sqlext_cmd(tmp_path / "home", "models", "import", "resnet50", "--bigdl-model", model, check=False),
             "go with `sqlext models import bigdl`")
    _refused(sqlext_cmd(tmp_path / "home", "train", "--images", train_dir, "--name", "x", "--backbone", "resnet50",
                        check=False), "needs --weights FILE")


def test_table_without_the_label_column_is_a_clear_error(tmp_path, fashion_images):
    home = tmp_path / "home"
    sqlext_cmd(home, "ingest", fashion_images[1], "--table", "demo.fashion_val", "--label-from-dir")
    _refused(sqlext_cmd(home, "train", "--table", "demo.fashion_val", "--label-col", "species", "--name", "x",
                        check=False), "has no label column 'species'", "--label-col")


def test_serving_modules_never_import_training_torch_or_bigdl():
    probe = ("import sys\n"
             "import sqlext.cli, sqlext.server, sqlext.functions, sqlext.predict\n"
             "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'bigdl', 'training'))\n"
             "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []
