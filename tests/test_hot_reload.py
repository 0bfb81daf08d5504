"""A running `sqlext serve` picks up a version trained while it serves: new connections get it,
the old version keeps answering by its explicit name."""
import json
import shutil
import time

from conftest import Server, make_home, sqlext_cmd
from sqlext import bundle
from test_training import write_fashion


def _models(server, folder, spec):
    rows = server.query(f"SELECT classify_image(content, '{spec}').model, image_label(content, '{spec}') "
                        f"FROM binaryFile.`{folder}`")
    return {model for model, _ in rows}, [label for _, label in rows]


def test_new_version_trained_while_serving_reaches_new_connections(tmp_path_factory, imagenet_bundle_dir):
    home = make_home(tmp_path_factory, imagenet_bundle_dir, "hot_home")
    train_dir, val_dir = write_fashion(tmp_path_factory.mktemp("hot_fashion"), corrupt=2)
    # version 1 of 'antsbees' exists before the server starts: a copy of the ImageNet bundle
    v1_source = imagenet_bundle_dir / "imagenet" / "1"
    staged = tmp_path_factory.mktemp("v1")
    shutil.copy2(v1_source / "model.onnx", staged / "model.onnx")
    manifest = json.loads((v1_source / "manifest.json").read_text())
    bundle.write(home.models, "antsbees", staged,
                 {key: manifest[key] for key in ("labels", "backbone", "preprocess", "metrics")})

    server = Server(home.root).start()
    try:
        sneakers = val_dir / "sneaker"
        assert _models(server, sneakers, "antsbees")[0] == {"antsbees:1"}

        # training from a folder keeps its catalog in memory, so it runs beside the server's Derby metastore
        out = sqlext_cmd(home.root, "train", "--images", train_dir, "--validation", val_dir, "--name", "antsbees",
                         "--epochs", "5")
        assert "published antsbees:2" in out.stdout
        assert "skipped 2 unreadable image(s)" in out.stdout
        assert server.alive()

        deadline = time.monotonic() + 60
        while True:  # the watcher rescans every second (--reload-interval 1)
            models, labels = _models(server, sneakers, "antsbees")
            if models == {"antsbees:2"} or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert models == {"antsbees:2"}, server.log()[-3000:]
        assert set(labels) <= {"sneaker", "sandal"} and labels.count("sneaker") >= 0.8 * len(labels), labels
        old_models, old_labels = _models(server, sneakers, "antsbees:1")
        assert old_models == {"antsbees:1"} and not set(old_labels) & {"sneaker", "sandal"}
        assert "antsbees:2" in server.log()
    finally:
        server.stop()
