"""`--bigdl-model`: models saved by BigDL as the frozen featurizer of `sqlext train`, and whole BigDL
classifiers published with `sqlext models import bigdl`.  Real BigDL on a real Spark JVM, model files
written by BigDL's own saveModel, real images, the serving engine and a real `sqlext serve`."""
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import Server, sqlext_cmd
from sqlext import bundle
from sqlext.config import Home
from sqlext.engine import Engine
from sqlext.image import decode
from sqlext.preprocess import model_input

SIZE = 32                                   # --input-size and --resize: tiny models, cheap checks
LABELS = ["sandal", "sneaker"]


@pytest.fixture(scope="module")
def jvm(tmp_path_factory):
    """BigDL's engine in this process, on the same kind of session `sqlext train` uses."""
    from training import spark as training_spark

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = training_spark.start(Home(tmp_path_factory.mktemp("bigdl_jvm")).ensure(), "local[2]", hive=False)
    yield spark
    spark.stop()


def bigdl():
    """BigDL's layer classes (imported quietly: BigDL prints a line for every layer it creates)."""
    from training.spark import quiet_stdout

    with quiet_stdout():
        from bigdl.dllib.nn import layer
    return layer


class Builder:
    """Small BigDL models with random weights and non-trivial batch-norm statistics."""

    def __init__(self, seed=0):
        self.rng, self.nn = np.random.default_rng(seed), bigdl()

    def randomised(self, layer, scale=0.5):
        weights = layer.get_weights()
        if weights:
            layer.set_weights([self.rng.normal(0, scale, w.shape).astype(np.float32) for w in weights])
        return layer

    def conv(self, n_in, n_out, kernel, pad=0, groups=1, bias=True):
        return self.randomised(self.nn.SpatialConvolution(n_in, n_out, kernel, kernel, 1, 1, pad, pad,
                                                          n_group=groups, with_bias=bias))

    def batch_norm(self, n):
        layer = self.randomised(self.nn.SpatialBatchNormalization(n))
        layer.set_running_mean(self.rng.normal(0, 0.3, n).astype(np.float32))
        layer.set_running_std(self.rng.uniform(0.5, 2.0, n).astype(np.float32))   # BigDL's name: the variance
        return layer

    def seq(self, *layers):
        model = self.nn.Sequential()
        for layer in layers:
            model.add(layer)
        return model

    def cnn(self):
        """conv (+groups, no bias) / BN / ReLU / ceil-mode max-pool / residual block / global average pool /
        View / Linear / LogSoftMax, as a Sequential."""
        nn = self.nn
        residual = self.seq(nn.ConcatTable().add(self.seq(self.conv(8, 8, 3, pad=1), self.batch_norm(8)))
                            .add(nn.Identity()), nn.CAddTable(), nn.ReLU()).set_name("res1")
        return self.seq(self.conv(3, 8, 3, pad=1).set_name("conv1"), self.batch_norm(8), nn.ReLU(),
                        self.conv(8, 8, 3, groups=2, bias=False), self.batch_norm(8), nn.ReLU(),
                        nn.SpatialMaxPooling(3, 3, 2, 2, to_ceil=True).set_name("pool1"), residual,
                        nn.SpatialAveragePooling(15, 15, global_pooling=True).set_name("pool5"),
                        nn.View([8]).set_name("flatten"), self.randomised(nn.Linear(8, 2), 0.05).set_name("fc"),
                        nn.LogSoftMax())

    def graph(self):
        """Input -> conv/BN/ReLU -> two branches -> JoinTable (channels) -> pools -> Linear -> SoftMax."""
        nn = self.nn
        data = nn.Input()
        stem = nn.ReLU()(self.batch_norm(6)(self.conv(3, 6, 3, pad=1).set_name("g_conv1")(data)))
        left = self.conv(6, 4, 1).set_name("g_left")(stem)
        right = nn.ReLU()(self.conv(6, 4, 3, pad=1).set_name("g_right")(stem))
        joined = nn.JoinTable(1, 3).set_name("g_join")([left, right])   # dimension 1 of 3 per-sample dims
        pooled = nn.SpatialAveragePooling(16, 16, global_pooling=True).set_name("pool5")(
            nn.SpatialMaxPooling(2, 2, 2, 2)(joined))
        logits = self.randomised(nn.Linear(8, 3), 0.05).set_name("g_fc")(nn.View([8]).set_name("g_view")(pooled))
        return nn.Model([data], [nn.SoftMax().set_name("g_prob")(logits)])


def save(model, path) -> Path:
    from training.spark import quiet_stdout

    with quiet_stdout():
        model.saveModel(str(path), over_write=True)
    return Path(path)


@pytest.fixture(scope="module")
def model_files(jvm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bigdl_models")
    build = Builder()
    return {"cnn": save(build.cnn(), folder / "cnn.bigdl"), "graph": save(build.graph(), folder / "graph.bigdl")}


def loaded(path):
    """The model as BigDL itself loads it from the file (the reference every check compares against)."""
    from training.spark import quiet_stdout

    with quiet_stdout():
        model = bigdl().Model.loadModel(str(path))
    model.evaluate()
    return model


def forward(model, batch) -> np.ndarray:
    from training.spark import quiet_stdout

    with quiet_stdout():
        return np.asarray(model.forward(np.ascontiguousarray(batch, dtype=np.float32)))


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """sneaker vs sandal PNGs (Fashion-MNIST) under root/{train,val}/<class>/."""
    from training import fashion as fashion_mnist

    root = tmp_path_factory.mktemp("bigdl_fashion")
    fashion_mnist.write_subset(root, 16, 8)
    return root / "train", root / "val"


def val_tiles(fashion, preprocess) -> tuple:
    paths = sorted(fashion[1].glob("*/*.png"))
    return paths, np.stack([decode(p.read_bytes(), preprocess["resize"], preprocess["crop"]) for p in paths])


def stated(**flags) -> dict:
    from training.backbones import stated_preprocess

    return stated_preprocess(input_size=SIZE, resize=SIZE, **flags)


def onnx_bytes(module, tmp_path) -> bytes:
    from training import export

    export.to_onnx(module, tmp_path / "model.onnx", "out", SIZE)
    return (tmp_path / "model.onnx").read_bytes()


# ------------------------------------------------------------------------------- conversion, in process
def test_sequential_cnn_converts_to_the_same_function(model_files, fashion, tmp_path):
    from training import bigdl_import

    said = []
    classifier, classes, worst = bigdl_import.classifier(model_files["cnn"], SIZE, say=said.append)
    assert classes == 2 and worst <= 1e-4
    assert said and "converted BigDL model matches BigDL's own forward: max |diff|" in said[0]
    reference = loaded(model_files["cnn"])
    fresh = np.random.default_rng(123).standard_normal((3, 3, SIZE, SIZE)).astype(np.float32)
    import torch

    with torch.no_grad():
        converted = classifier(torch.from_numpy(fresh)).numpy()
    expected = np.exp(forward(reference, fresh))          # the model ends in LogSoftMax
    assert np.abs(converted - expected).max() <= 1e-4
    assert 0.05 < expected.min() and expected.max() < 0.95  # spread-out probabilities, not one-hot ones

    # the exported ONNX, run by the serving engine on real decoded images, still computes BigDL's function
    preprocess = stated()
    _, tiles = val_tiles(fashion, preprocess)
    served = Engine(onnx_bytes(classifier, tmp_path), preprocess).predict(tiles)
    assert np.abs(served - np.exp(forward(reference, model_input(tiles, preprocess)))).max() <= 1e-4

    # default featurizer = the model minus its classifier (Linear + LogSoftMax): the 8 values fed to "fc"
    featurizer, _ = bigdl_import.featurizer(model_files["cnn"], None, SIZE, say=said.append)
    head_less = bigdl().Sequential()
    modules = reference.value.modules()
    for i in range(modules.size() - 2):
        head_less.value.add(modules.apply(i))
    with torch.no_grad():
        features = featurizer(torch.from_numpy(fresh)).numpy()
    assert features.shape == (3, 8)
    assert np.abs(features - forward(head_less, fresh)).max() <= 1e-4


def test_graph_model_converts_and_cuts_at_a_named_node(model_files, fashion, tmp_path):
    import torch

    from training import bigdl_import
    from training.spark import quiet_stdout

    classifier, classes, _ = bigdl_import.classifier(model_files["graph"], SIZE, say=lambda _: None)
    assert classes == 3
    reference = loaded(model_files["graph"])
    fresh = np.random.default_rng(7).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        assert np.abs(classifier(torch.from_numpy(fresh)).numpy() - forward(reference, fresh)).max() <= 1e-4

    # --bigdl-feature-layer pool5 == Analytics Zoo's Net.load_bigdl(path).new_graph(["pool5"]), flattened
    featurizer, _ = bigdl_import.featurizer(model_files["graph"], "pool5", SIZE, say=lambda _: None)
    with quiet_stdout():
        from bigdl.dllib.net.net_load import Net
        zoo_features = Net.load_bigdl(str(model_files["graph"])).new_graph(["pool5"])
    zoo_features.evaluate()   # batch norm with its running statistics
    preprocess = stated()
    _, tiles = val_tiles(fashion, preprocess)
    expected = forward(zoo_features, model_input(tiles, preprocess)).reshape(len(tiles), -1)
    served = Engine(onnx_bytes(featurizer, tmp_path), preprocess).predict(tiles)
    assert served.shape == (len(tiles), 8)
    assert np.abs(served - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())


def test_older_java_serialized_files_load_too(model_files, tmp_path):
    from bigdl.dllib.utils.common import callBigDlFunc

    from training import bigdl_import

    legacy = tmp_path / "legacy.bigdl"
    callBigDlFunc("float", "modelSave", loaded(model_files["cnn"]).value, str(legacy), True)   # Module.save
    assert legacy.read_bytes()[:2] == b"\xac\xed"
    said = []
    bigdl_import.featurizer(legacy, "pool1", SIZE, say=said.append)
    assert "matches BigDL's own forward" in said[0]


def test_bgr_bundle_equals_the_rgb_path_fed_flipped_tiles(model_files, photos_dir, tmp_path):
    """channel_order bgr: the engine reverses the channels after normalising with the R,G,B mean/std."""
    from training.pretrained import publish_bigdl

    mean, std = [110.0, 120.0, 130.0], [50.0, 60.0, 70.0]
    bgr = publish_bigdl(tmp_path, model_files["cnn"], LABELS, "bgr", stated(mean=mean, std=std, channel_order="bgr"),
                        say=lambda _: None)
    rgb = publish_bigdl(tmp_path, model_files["cnn"], LABELS, "rgb", stated(mean=mean[::-1], std=std[::-1]),
                        say=lambda _: None)
    assert bgr.preprocess["channel_order"] == "bgr" and "channel_order" not in rgb.preprocess
    tiles = np.stack([decode(p.read_bytes(), SIZE, SIZE) for p in sorted(photos_dir.iterdir())])  # colour photos
    by_bgr = Engine(bgr.model_bytes(), bgr.preprocess).predict(tiles)
    flipped = Engine(rgb.model_bytes(), rgb.preprocess).predict(np.ascontiguousarray(tiles[..., ::-1]))
    assert np.abs(by_bgr - flipped).max() <= 1e-5
    expected = np.exp(forward(loaded(model_files["cnn"]), model_input(tiles, bgr.preprocess)))
    assert np.abs(by_bgr - expected).max() <= 1e-4
    assert np.abs(by_bgr - Engine(rgb.model_bytes(), rgb.preprocess).predict(tiles)).max() > 1e-3  # order matters


# ---------------------------------------------------------------------- clear errors, no stack traces
def test_unsupported_layer_is_named_with_what_is_supported(jvm, tmp_path):
    from training import bigdl_import

    build = Builder()
    path = save(build.seq(build.conv(3, 4, 3), build.nn.Abs().set_name("odd_one")), tmp_path / "abs.bigdl")
    with pytest.raises(SystemExit) as refused:
        bigdl_import.featurizer(path, "odd_one", SIZE)
    message = str(refused.value)
    assert "layer 'odd_one' is a BigDL Abs" in message and "cannot convert" in message
    assert "Supported:" in message and "SpatialConvolution" in message and "StaticGraph" in message


def test_unknown_feature_layer_lists_the_layers(model_files):
    from training import bigdl_import

    with pytest.raises(SystemExit) as refused:
        bigdl_import.featurizer(model_files["cnn"], "pool9", SIZE)
    assert "has no layer 'pool9'" in str(refused.value)
    assert all(name in str(refused.value) for name in ("conv1", "pool1", "res1", "pool5", "fc"))


def test_files_that_are_not_bigdl_models_are_refused(jvm, tmp_path):
    from training import bigdl_import

    (tmp_path / "notes.bigdl").write_bytes(b"these are not the weights you are looking for\n" * 20)
    with pytest.raises(SystemExit, match="is not a model file saved by BigDL"):
        bigdl_import.featurizer(tmp_path / "notes.bigdl")
    with pytest.raises(SystemExit, match="no such BigDL model file"):
        bigdl_import.featurizer(tmp_path / "missing.bigdl")


def test_labels_must_match_the_model_outputs(model_files, tmp_path):
    from training.pretrained import publish_bigdl

    with pytest.raises(SystemExit, match="lists 3 labels but the BigDL model outputs 2 classes"):
        publish_bigdl(tmp_path, model_files["cnn"], ["a", "b", "c"], "x", stated(), say=lambda _: None)
    assert not (tmp_path / "x").exists() or bundle.versions(tmp_path, "x") == []


def _refused(result, *fragments):
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-3000:]


def test_command_line_mistakes_are_one_line_errors(tmp_path, fashion, model_files):
    home = tmp_path / "home"
    train = ("train", "--images", fashion[0], "--name", "x")
    _refused(sqlext_cmd(home, *train, "--bigdl-model", tmp_path / "missing.bigdl", check=False),
             "no such BigDL model file")
    _refused(sqlext_cmd(home, *train, "--bigdl-model", model_files["cnn"], "--backbone", "resnet50", check=False),
             "--bigdl-model replaces --backbone/--weights")
    _refused(sqlext_cmd(home, *train, "--channel-order", "bgr", check=False),
             "--channel-order: only with --bigdl-model")
    _refused(sqlext_cmd(home, "models", "import", "bigdl", "--bigdl-model", model_files["cnn"], check=False),
             "needs --labels FILE")


# -------------------------------------------------------------- the real commands, then serving over SQL
@pytest.fixture(scope="module")
def published(tmp_path_factory, model_files, fashion):
    """`sqlext train` with the CNN's pool1 output as features, and `sqlext models import bigdl` of the CNN."""
    home = tmp_path_factory.mktemp("bigdl_home")
    size_flags = ("--input-size", SIZE, "--resize", SIZE)
    trained = sqlext_cmd(home, "train", "--images", fashion[0], "--validation", fashion[1], "--name", "bfashion",
                         "--bigdl-model", model_files["cnn"], "--bigdl-feature-layer", "pool1", *size_flags,
                         "--epochs", 5, "--master", "local[2]")
    labels = home / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    imported = sqlext_cmd(home, "models", "import", "bigdl", "--bigdl-model", model_files["cnn"], "--labels", labels,
                          "--name", "bcnn", *size_flags, "--master", "local[2]")
    return Home(home), trained.stdout, imported.stdout


def test_train_with_a_bigdl_featurizer_records_the_file(published, model_files):
    home, said, _ = published
    assert "converted BigDL featurizer matches BigDL's own forward: max |diff|" in said
    assert "published bfashion:1" in said
    loaded_bundle = bundle.load(home.models / "bfashion" / "1")
    manifest = loaded_bundle.manifest
    assert manifest["backbone"] == "bigdl:cnn.bigdl" and loaded_bundle.labels == LABELS
    assert manifest["preprocess"] == stated()
    record = manifest["training"]["bigdl_model"]
    assert record["file"] == "cnn.bigdl" and record["sha256"] == bundle.sha256_file(model_files["cnn"])
    assert record["feature_layer"] == "pool1" and record["max_abs_diff"] <= 1e-4
    assert str(model_files["cnn"].parent) not in (home.models / "bfashion" / "1" / "manifest.json").read_text()
    assert manifest["metrics"]["export_max_abs_diff"] <= 1e-4     # model.onnx == the BigDL head, checked by train


def test_imported_bigdl_classifier_gives_bigdl_probabilities(published, model_files, fashion):
    home, _, said = published
    assert "imported bcnn:1 (2 labels)" in said
    imported = bundle.load(home.models / "bcnn" / "1")
    assert imported.manifest["backbone"] == "bigdl:cnn.bigdl" and imported.labels == LABELS
    assert imported.manifest["bigdl_model"]["sha256"] == bundle.sha256_file(model_files["cnn"])
    _, tiles = val_tiles(fashion, imported.preprocess)
    expected = np.exp(forward(loaded(model_files["cnn"]), model_input(tiles, imported.preprocess)))
    assert np.abs(Engine(imported.model_bytes(), imported.preprocess).predict(tiles) - expected).max() <= 1e-4


def test_both_bundles_answer_over_sql(published, model_files, fashion):
    home, _, _ = published
    paths, tiles = val_tiles(fashion, stated())
    expected = np.exp(forward(loaded(model_files["cnn"]), model_input(tiles, stated())))
    tuned = bundle.load(home.models / "bfashion" / "1")
    tuned_labels = [LABELS[i] for i in Engine(tuned.model_bytes(), tuned.preprocess).predict(tiles).argmax(axis=1)]
    server = Server(home.root).start()
    try:
        rows = server.query(
            "SELECT regexp_extract(path, '/([^/]+)/[^/]+$', 1) AS truth, image_label(content, 'bfashion') AS tuned, "
            "classify_image(content, 'bcnn').label AS label, classify_image(content, 'bcnn').probability AS p "
            f"FROM binaryFile.`{fashion[1]}/*/*.png` ORDER BY path")
    finally:
        server.stop()
    assert [row[0] for row in rows] == [p.parent.name for p in paths]
    # random BigDL features do not separate the classes reliably on 16 images, so no accuracy bar here: the
    # fine-tuned bundle answers what its graph computes (train checked that graph against the BigDL head)
    assert [row[1] for row in rows] == tuned_labels
    assert [row[2] for row in rows] == [LABELS[i] for i in expected.argmax(axis=1)]
    assert np.abs(np.array([row[3] for row in rows]) - expected.max(axis=1)).max() <= 1e-4
