"""`sqlext models quantize`: int8 published only above the agreement bar, with the figure in its manifest."""
import json

from conftest import make_home, sqlext_cmd


def test_quantize_publishes_only_above_the_agreement_bar(tmp_path_factory, imagenet_bundle_dir, photos_dir):
    home = make_home(tmp_path_factory, imagenet_bundle_dir, "quantize_home")
    args = ("models", "quantize", "imagenet:1", "--calibration", photos_dir, "--validation", photos_dir)

    refused = sqlext_cmd(home.root, *args, "--min-agreement", "1.01", check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "not published" in refused.stderr
    assert not (home.models / "imagenet" / "2").exists()

    published = sqlext_cmd(home.root, *args, "--min-agreement", "0.5")
    result = json.loads(published.stdout.strip().splitlines()[-1])
    assert result["key"] == "imagenet:2"
    manifest = json.loads((home.models / "imagenet" / "2" / "manifest.json").read_text())
    q = manifest["quantization"]
    assert q["quantized_from"] == "imagenet:1" and q["images"] == len(list(photos_dir.iterdir()))
    assert 0.5 <= q["top1_agreement"] == result["top1_agreement"] <= 1.0
    assert manifest["labels"] == json.loads((home.models / "imagenet" / "1" / "manifest.json").read_text())["labels"]
    int8, fp32 = (home.models / "imagenet" / v / "model.onnx" for v in ("2", "1"))
    assert int8.stat().st_size < 0.6 * fp32.stat().st_size
