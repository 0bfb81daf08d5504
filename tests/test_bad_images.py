"""Bad and awkward images: a correct label or NULL, never a dead worker, never a lost or doubled row.

The corpus (tests/image_corpus.py) is generated from a real sample photo.  Unit tests hit
``sqlext.image.decode`` directly; the rest run over JDBC against the shared `sqlext serve`.
"""
import io
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image
from pyhive.exc import OperationalError

import image_corpus
from bench import procs
from sqlext import image, image_header
from sqlext.sqlrunner import short_error

RESIZE, CROP = 256, 224
PHOTO_IDS_FROM = 100  # the sample photos join the corpus in the table as ids 100, 101, ...


@pytest.fixture(scope="module")
def corpus(photos_dir):
    return image_corpus.build(photos_dir / image_corpus.SOURCE_PHOTO)


# ------------------------------------------------------------------------------------ decode, unit
def test_decode_contract_on_every_case(corpus):
    """A crop x crop x 3 uint8 RGB tile, or DecodeError with the expected reason; nothing else."""
    wrong = []
    for case in corpus:
        try:
            tile = image.decode(case.content, RESIZE, CROP)
        except image.DecodeError as exc:
            if case.expect != "null" or case.reason not in str(exc):
                wrong.append(f"{case.name}: DecodeError({exc})")
            continue
        if case.expect == "null":
            wrong.append(f"{case.name}: decoded, expected DecodeError({case.reason!r})")
        elif tile.shape != (CROP, CROP, 3) or tile.dtype != np.uint8 or not tile.flags.c_contiguous:
            wrong.append(f"{case.name}: tile {tile.shape} {tile.dtype}")
    assert not wrong, "\n".join(wrong)


def test_encodings_of_the_photo_decode_to_nearly_the_same_tile(corpus):
    by_name = {c.name: c for c in corpus}
    reference = image.decode(by_name["photo_original"].content, RESIZE, CROP).astype(int)
    lossless = ("png_16bit", "rgba_png", "bmp", "tiff_lzw", "webp_lossless")
    for name in lossless:
        assert np.array_equal(image.decode(by_name[name].content, RESIZE, CROP), reference), name
    for case in corpus:
        if case.expect == "same" and case.name not in lossless:
            diff = np.abs(image.decode(case.content, RESIZE, CROP) - reference).mean()
            assert diff < 6, (case.name, diff)


def _quadrants() -> Image.Image:
    """256 x 256 RGB: red top-left, green top-right, blue bottom-left, white bottom-right."""
    pixels = np.zeros((256, 256, 3), np.uint8)
    pixels[:128, :128] = (255, 0, 0)
    pixels[:128, 128:] = (0, 255, 0)
    pixels[128:, :128] = (0, 0, 255)
    pixels[128:, 128:] = (255, 255, 255)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_gives_an_upright_tile(orientation):
    data = image_corpus.exif_rotated(_quadrants(), orientation)
    tile = image.decode(data, RESIZE, CROP).astype(int)
    # the centre 224 crop of 256 keeps every quadrant; sample well inside each one
    for (y, x), colour in {(40, 40): (255, 0, 0), (40, 184): (0, 255, 0), (184, 40): (0, 0, 255),
                           (184, 184): (255, 255, 255)}.items():
        assert np.abs(tile[y, x] - colour).max() < 40, (orientation, (y, x), tile[y, x].tolist(), colour)


def test_exif_rotated_photo_decodes_like_the_upright_one(corpus):
    by_name = {c.name: c for c in corpus}
    upright = image.decode(by_name["photo_jpeg"].content, RESIZE, CROP).astype(int)
    for name in ("exif_rotated_90_jpeg", "exif_rotated_270_jpeg"):
        rotated = image.decode(by_name[name].content, RESIZE, CROP)
        assert np.abs(rotated - upright).mean() < 4, name
    # the same stored pixels without the tag are far off: the test would notice an ignored tag
    stored = Image.open(io.BytesIO(by_name["exif_rotated_90_jpeg"].content))
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95)
    assert np.abs(image.decode(buffer.getvalue(), RESIZE, CROP) - upright).mean() > 20


def _encodings():
    picture = Image.new("RGB", (37, 23), (10, 200, 30))
    alpha = picture.copy()
    alpha.putalpha(128)
    out = {}
    for label, source, fmt, options in [
        ("jpeg", picture, "JPEG", {}), ("jpeg_progressive", picture, "JPEG", {"progressive": True}),
        ("png", picture, "PNG", {}), ("webp_lossy", picture, "WEBP", {"quality": 80}),
        ("webp_lossless", picture, "WEBP", {"lossless": True}), ("webp_alpha", alpha, "WEBP", {"quality": 80}),
        ("bmp", picture, "BMP", {}), ("tiff", picture, "TIFF", {}), ("bigtiff", picture, "TIFF", {"big_tiff": True}),
        ("gif", picture, "GIF", {}),
    ]:
        buffer = io.BytesIO()
        source.save(buffer, fmt, **options)
        out[label] = buffer.getvalue()
    return out


def test_header_probe_reads_the_size_of_every_format():
    for label, data in _encodings().items():
        fmt, size = image_header.probe(data)
        assert fmt == label.split("_")[0].replace("bigtiff", "tiff") and size == (37, 23), (label, fmt, size)
        assert image.decode(data, RESIZE, CROP).shape == (CROP, CROP, 3), label


def _decodes_or_refuses(data) -> bool:
    """True if ``decode`` gave a tile, False if DecodeError; any other exception fails the test."""
    try:
        return image.decode(data, RESIZE, CROP).shape == (CROP, CROP, 3)
    except image.DecodeError:
        return False


def test_header_probe_reads_big_endian_tiff():
    import struct
    entries = struct.pack(">HHIHH", 256, 3, 1, 5000, 0) + struct.pack(">HHII", 257, 4, 1, 70_000)
    header = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + b"\0\0\0\0"
    assert image_header.probe(header) == ("tiff", (5000, 70_000))
    with pytest.raises(image.DecodeError, match="image too large: 5000x70000"):
        image.decode(header, RESIZE, CROP)


def test_header_probe_and_decode_survive_truncation_and_corruption(corpus):
    """Every short prefix, prefixes across whole files, and byte flips: a tile or DecodeError."""
    rng = np.random.default_rng(3)
    samples = list(_encodings().values()) + [c.content for c in corpus if c.expect == "same"][:6]
    for data in samples:
        for cut in list(range(0, 80)) + [int(f * len(data)) for f in np.linspace(0.1, 0.95, 8)]:
            image_header.probe(data[:cut])  # never raises
            assert not (cut < 12 and _decodes_or_refuses(data[:cut]))
            _decodes_or_refuses(data[:cut])
        for _ in range(12):
            mutated = bytearray(data)
            for at in rng.integers(0, len(data), 8):
                mutated[at] = int(rng.integers(0, 256))
            _decodes_or_refuses(bytes(mutated))


def test_small_image_is_enlarged_like_resize_then_centre_crop():
    """A 28 x 35 image: the tile equals PIL's bilinear resize of the shorter side to 256 (256 x 320 here,
    no rounding) followed by the centre 224 crop.  Cutting a whole-pixel region first shifted and zoomed
    such images by several tile pixels (mean |diff| ~31 on this noise)."""
    pixels = np.random.default_rng(0).integers(0, 256, (35, 28, 3), dtype=np.uint8)
    tile = image.decode(image_corpus._encode(Image.fromarray(pixels), "PNG"), RESIZE, CROP).astype(int)
    reference = np.asarray(Image.fromarray(pixels).resize((256, 320), Image.BILINEAR), dtype=int)
    assert np.abs(tile - reference[48:48 + CROP, 16:16 + CROP]).mean() < 1.5


def test_thin_sliver_costs_what_a_small_image_costs():
    sliver = image_corpus._encode(Image.new("RGB", (2, 200_000), (1, 2, 3)), "PNG")
    started = time.perf_counter()
    tile = image.decode(sliver, RESIZE, CROP)
    assert tile.shape == (CROP, CROP, 3) and (tile == (1, 2, 3)).all()
    assert time.perf_counter() - started < 1.0  # resizing the whole sliver would mean 256 x 25.6M pixels


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_bomb_is_refused_even_when_cv2_was_imported_first(tmp_path):
    """OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once, at import: the header check must not depend on it."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(image_corpus.png_bomb(20_000, 20_000))
    result = _python(f"""
        import resource, cv2
        from sqlext import image
        try:
            image.decode(open({str(bomb)!r}, "rb").read(), 256, 224)
            print("decoded")
        except image.DecodeError as exc:
            print("refused:", exc)
        print("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """)
    assert "refused: image too large: 20000x20000" in result.stdout, result.stdout + result.stderr
    peak = int(result.stdout.split("peak_mb")[1])
    assert peak < 400, f"{peak} MB peak: the bomb was decoded"  # decoding it takes over 1.2 GB


def test_opencv_limit_is_in_effect_in_a_spark_python_worker(tmp_path):
    """A Spark Python worker is forked from pyspark.daemon, which must not have imported cv2 yet,
    so sqlext.image's OPENCV_IO_MAX_IMAGE_PIXELS takes effect (a second line of defence)."""
    over_limit = tmp_path / "over.png"
    over_limit.write_bytes(image_corpus.png_bomb(9000, 9000))  # 81M pixels > the 64Mi default
    result = _python(f"""
        import sys
        import sqlext.spark_daemon, pyspark.daemon, pyspark.worker  # what a forked worker has loaded before the UDF
        print("cv2 preloaded:", "cv2" in sys.modules)
        import numpy as np
        from sqlext import image
        import cv2
        data = np.frombuffer(open({str(over_limit)!r}, "rb").read(), np.uint8)
        try:
            print("opencv decoded:", cv2.imdecode(data, cv2.IMREAD_COLOR) is not None)
        except cv2.error as exc:
            print("opencv decoded: False", "CV_IO_MAX_IMAGE_PIXELS" in str(exc))
    """)
    assert "cv2 preloaded: False" in result.stdout, result.stdout + result.stderr
    assert "opencv decoded: False" in result.stdout, result.stdout + result.stderr


# ------------------------------------------------------------------------------------ over JDBC
@pytest.fixture(scope="module")
def mixed(server, corpus, photos_dir, tmp_path_factory):
    """badimg.mixed(id, name, content): every corpus case (NULL included) plus the sample photos,
    spread over 3 files so bad rows share Arrow batches with good ones in several tasks."""
    folder = image_corpus.write(corpus, tmp_path_factory.mktemp("corpus"))
    photos = sorted(photos_dir.iterdir())
    for i, photo in enumerate(photos):
        (folder / f"{PHOTO_IDS_FROM + i}-photo_{photo.name}").write_bytes(photo.read_bytes())
    literal = " ".join(f"UNION ALL SELECT {c.id}, '{c.name}', "
                       f"{'CAST(NULL AS BINARY)' if c.content is None else 'X' + repr(c.content.hex())}"
                       for c in corpus if not c.content)  # NULL and empty: no file can hold them
    conn = server.connect()
    try:
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS badimg")
        cur.execute("DROP TABLE IF EXISTS badimg.mixed")
        cur.execute(f"""
            CREATE TABLE badimg.mixed USING parquet AS
            SELECT /*+ REPARTITION(3) */ * FROM (
              SELECT CAST(regexp_extract(path, '/([0-9]+)-[^/]*$', 1) AS INT) AS id,
                     regexp_extract(path, '/[0-9]+-([^/]*)$', 1) AS name, content
              FROM binaryFile.`{folder}` {literal})""")
    finally:
        conn.close()
    expected = {c.id: (c.name, c.expect) for c in corpus}
    expected.update({PHOTO_IDS_FROM + i: (f"photo_{p.name}", "label") for i, p in enumerate(photos)})
    return expected


@pytest.fixture(scope="module")
def log_offset(server):
    return len(server.log())


def test_mixed_table_one_row_per_input_and_the_right_answers(server, mixed, log_offset):
    assert server.query("SELECT count(*), count(DISTINCT id) FROM badimg.mixed") == [(len(mixed), len(mixed))]
    rows = server.query("SELECT id, name, image_label(content), classify_image(content).label, "
                        "classify_image(content).probability, classify_image(content).model FROM badimg.mixed")
    ids = [r[0] for r in rows]
    assert sorted(ids) == sorted(mixed), "rows lost or duplicated"
    by_id = {r[0]: r for r in rows}
    reference = by_id[1][2]
    assert reference == "espresso"
    wrong = []
    for id_, (name, expect) in mixed.items():
        _, got_name, label, struct_label, probability, model = by_id[id_]
        assert got_name == name
        if label != struct_label:
            wrong.append(f"{name}: image_label {label!r} != classify_image {struct_label!r}")
        if expect == "null" and (label is not None or probability is not None or model is not None):
            wrong.append(f"{name}: expected NULL, got {label!r}")
        if expect in ("same", "label") and (label is None or not 0 < probability <= 1 or model != "imagenet:1"):
            wrong.append(f"{name}: expected a label, got {label!r} p={probability}")
        if expect == "same" and label != reference:
            wrong.append(f"{name}: {label!r}, the photo itself is {reference!r}")
    assert not wrong, "\n".join(wrong)


def test_aggregates_and_joins_over_the_mixed_table(server, mixed):
    labelled = sum(1 for _, expect in mixed.values() if expect != "null")
    assert server.query("SELECT count(*), count(image_label(content)) FROM badimg.mixed") == [(len(mixed), labelled)]
    rows = server.query("SELECT a.id, image_label(a.content) = image_label(b.content) FROM badimg.mixed a "
                        "JOIN badimg.mixed b ON a.id = b.id")
    assert sorted(r[0] for r in rows) == sorted(mixed)
    assert {r[1] for r in rows if mixed[r[0]][1] != "null"} == {True}


def test_nothing_killed_a_worker_or_the_server(server, mixed, log_offset):
    server.query("SELECT count(image_label(content)) FROM badimg.mixed")
    assert server.alive()
    new_log = server.log()[log_offset:]
    for sign in ("Python worker exited unexpectedly", "Lost task", "SIGSEGV", "OutOfMemoryError"):
        assert sign not in new_log, sign
    assert "not decodable, returned NULL" in new_log


def test_on_error_fail_stops_the_mixed_query_with_the_reason(server, mixed):
    conn = server.connect()
    try:
        cur = conn.cursor()
        cur.execute("SET sqlext.on_error=fail")
        with pytest.raises(OperationalError) as info:
            cur.execute("SELECT id, image_label(content) FROM badimg.mixed")
            cur.fetchall()
        message = short_error(info.value)
        assert "sqlext.on_error=fail: image not usable (" in message, message
        assert any(r in message for r in ("not a decodable image", "empty content", "image too large")), message
        # NULL content is not an error, and good images still work in the strict session
        good = [i for i, (_, expect) in mixed.items() if expect != "null"] + [9]
        cur.execute(f"SELECT count(*), count(image_label(content)) FROM badimg.mixed "
                    f"WHERE id IN ({', '.join(map(str, good))})")
        assert cur.fetchall() == [(len(good), len(good) - 1)]
        cur.execute("SET sqlext.on_error=null")
        cur.execute("SELECT count(*) FROM (SELECT image_label(content) FROM badimg.mixed)")
        assert cur.fetchall() == [(len(mixed),)]
    finally:
        conn.close()


def test_worker_memory_stays_bounded_on_bombs(server, mixed):
    """The 20k x 20k PNG bomb decodes to 1.2 GB; refused from its header, no worker gets near that."""
    server.query("SELECT count(image_label(content)) FROM badimg.mixed")  # warm: every worker has its engine
    before = procs.tree(server.proc.pid)
    assert before.workers, "no Python workers under the server"
    baseline = max(procs.peak_mb(w) for w in before.workers)
    rows = server.query("SELECT name, image_label(content) FROM badimg.mixed CROSS JOIN range(6) "
                        "WHERE name LIKE 'bomb%'")
    assert len(rows) == 18 and {r[1] for r in rows} == {None}
    after = procs.tree(server.proc.pid)
    peaks = {w: procs.peak_mb(w) for w in after.workers}
    assert peaks and max(peaks.values()) < baseline + 300, (baseline, peaks)
    assert server.alive()
