"""The bundle contract: checksums verified, atomic publication, names resolved."""
import json
import shutil

import pytest

from sqlext import bundle
from sqlext.registry import Registry, UnknownModel


def _publish(models, name="m", labels=("a", "b"), payload=b"onnx-bytes"):
    src = models.parent / f"src-{name}"
    src.mkdir(exist_ok=True)
    (src / "model.onnx").write_bytes(payload)
    return bundle.write(models, name, src, {"labels": list(labels), "backbone": "test",
                                            "preprocess": {"resize": 8, "crop": 8, "mean": [0] * 3,
                                                           "std": [1] * 3}})


def test_versions_increase_and_resolve(tmp_path):
    models = tmp_path / "models"
    first, second = _publish(models), _publish(models, payload=b"other")
    assert (first.version, second.version) == (1, 2)
    registry = Registry.scan(models)
    assert registry.resolve("m").key == "m:2"
    assert registry.resolve("m:1").key == "m:1"
    manifest = json.loads((second.path / "manifest.json").read_text())
    assert set(bundle.REQUIRED_KEYS) <= set(manifest)
    assert manifest["files"]["model.onnx"] == bundle.sha256_file(second.path / "model.onnx")


def test_unknown_model_names_the_available_ones(tmp_path):
    models = tmp_path / "models"
    _publish(models, "cats")
    with pytest.raises(UnknownModel, match=r"unknown model 'dogs'; available models: cats"):
        Registry.scan(models).resolve("dogs")
    with pytest.raises(UnknownModel):
        Registry.scan(models).resolve("cats:7")


def test_modified_file_is_refused(tmp_path):
    models = tmp_path / "models"
    good = _publish(models, "good")
    bad = _publish(models, "bad")
    (bad.path / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(bundle.BundleError, match="sha256"):
        bundle.load(bad.path)
    registry = Registry.scan(models)
    assert list(registry.bundles) == [good.key]
    assert any("sha256" in reason for reason in registry.refused.values())


def test_manifest_pointing_outside_its_folder_is_refused(tmp_path):
    models = tmp_path / "models"
    b = _publish(models)
    manifest = json.loads((b.path / "manifest.json").read_text())
    manifest["files"]["../../secret"] = "0" * 64
    (b.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle.BundleError, match="outside the bundle folder"):
        bundle.load(b.path)


@pytest.mark.parametrize("target", ["model.onnx", "manifest.json"])
def test_symlink_pointing_outside_its_folder_is_refused(tmp_path, target):
    models = tmp_path / "models"
    b = _publish(models)
    outside = tmp_path / "elsewhere"
    outside.write_bytes((b.path / target).read_bytes())  # same bytes: the checksum alone would pass
    (b.path / target).unlink()
    (b.path / target).symlink_to(outside)
    with pytest.raises(bundle.BundleError, match="symlink that points outside"):
        bundle.load(b.path)
    assert list(Registry.scan(models).bundles) == []


def test_staging_folders_are_never_loaded(tmp_path):
    models = tmp_path / "models"
    b = _publish(models)
    half = models / "m" / ".staging-abc"
    shutil.copytree(b.path, half)
    (models / "m" / "3").mkdir()  # a version folder without a manifest: refused, not served
    registry = Registry.scan(models)
    assert list(registry.bundles) == ["m:1"]
