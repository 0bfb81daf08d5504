"""sqlext.keepalive: a server's Python workers outlive Spark's one-minute idle timeout."""
import base64
import time

from conftest import Server, make_home, sqlext_cmd

from bench import procs

# Spark stops idle Python workers once no Python task has finished for 60 s; its monitor looks every 10 s
IDLE_SECONDS = 80


def _label_query(photo) -> str:
    content = base64.b64encode(photo.read_bytes()).decode()
    return f"SELECT image_label(content) FROM VALUES (unbase64('{content}')) AS t(content)"


def test_python_workers_survive_an_idle_pause_only_with_the_keepalive(tmp_path_factory, imagenet_bundle_dir,
                                                                       photos_dir):
    sql = _label_query(photos_dir / "flower.jpg")
    kept = Server(make_home(tmp_path_factory, imagenet_bundle_dir, "keepalive_on").root).start()
    try:
        plain = Server(make_home(tmp_path_factory, imagenet_bundle_dir, "keepalive_off").root,
                       env={"SQLEXT_WORKER_KEEPALIVE_SECONDS": "0"}).start()
        try:
            assert kept.query(sql) == plain.query(sql) == [("daisy",)]
            before = {srv: set(procs.tree(srv.proc.pid).workers) for srv in (kept, plain)}
            assert before[kept] and before[plain]
            time.sleep(IDLE_SECONDS)
            after = {srv: set(procs.tree(srv.proc.pid).workers) for srv in (kept, plain)}
            assert before[kept] <= after[kept], "the keepalive did not keep the workers"
            assert not before[plain] & after[plain], "Spark no longer stops idle workers: the test proves nothing"
            assert kept.query(sql) == [("daisy",)]
            assert before[kept] <= set(procs.tree(kept.proc.pid).workers)
        finally:
            plain.stop()
    finally:
        kept.stop()


def test_a_keepalive_setting_that_is_not_a_number_stops_serve_before_spark_starts(tmp_path):
    result = sqlext_cmd(tmp_path / "home", "serve", "--port", "0", check=False, timeout=120,
                        env={"SQLEXT_WORKER_KEEPALIVE_SECONDS": "half a minute"})
    assert result.returncode != 0
    assert "SQLEXT_WORKER_KEEPALIVE_SECONDS must be a number of seconds" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
