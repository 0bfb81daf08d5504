"""Every file in sql/examples runs through the real `sqlext sql FILE --port P` against a live
server, and its printed results are checked.

Every example needs an entry in EXPECTATIONS: a file without one FAILS, so no example goes
unchecked.  An entry names the server fixture it runs against (``server``: the ImageNet bundle
and demo.photos with the 7 sample photos) and how often to run it (twice for files that create
tables: they must be re-runnable).
"""
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT, sqlext_cmd

EXAMPLES = ROOT / "sql" / "examples"
PHOTOS = ["astronaut.png", "chelsea_cat.png", "china.jpg", "coffee.png", "flower.jpg", "grace_hopper.jpg",
          "rocket.jpg"]
CATS = {"tiger cat", "tabby, tabby cat", "Egyptian cat"}     # what EfficientNet-Lite0 may call Chelsea


@dataclass
class Result:
    """One statement's printed result table: its line in the file, column names, rows of strings."""
    line: int
    columns: list
    rows: list


def parse_output(text: str) -> list:
    """The result tables `sqlext sql` printed, one Result per statement that returned columns."""
    results, line, lines = [], None, text.splitlines()
    i = 0
    while i < len(lines):
        match = re.fullmatch(r"-- line (\d+)", lines[i])
        if match:
            line = int(match.group(1))
        elif lines[i].startswith("+-") and i + 2 < len(lines) and lines[i + 1].startswith("| "):
            cells = lambda row: [c.strip() for c in row.strip()[1:-1].split(" | ")]
            columns, rows, i = cells(lines[i + 1]), [], i + 3
            while not lines[i].startswith("+-"):
                rows.append(cells(lines[i]))
                i += 1
            assert re.fullmatch(r"\((\d+) rows?\)", lines[i + 1]), lines[i + 1]
            results.append(Result(line, columns, rows))
            i += 1
        i += 1
    return results


def column(result: Result, name: str) -> list:
    return [row[result.columns.index(name)] for row in result.rows]


# ---- per-file checks: 0x/1x run on the ImageNet bundle and demo.photos ----------------------------

def check_01(results):
    (labels,) = results
    assert labels.columns == ["file", "label"]
    assert column(labels, "file") == PHOTOS
    assert dict(labels.rows)["coffee.png"] == "espresso"
    assert dict(labels.rows)["chelsea_cat.png"] in CATS


def check_02(results):
    (confident,) = results
    assert confident.columns == ["file", "label", "probability", "model"]
    assert confident.rows and confident.rows[0][:2] == ["coffee.png", "espresso"]
    assert all(float(p) > 0.5 for p in column(confident, "probability"))
    assert set(column(confident, "model")) == {"imagenet:1"}


def check_03(results):
    functions, describe = results
    assert {"classify_image", "image_label"} <= set(column(functions, "function"))
    assert "image_label(content[, model])" in "\n".join(row[0] for row in describe.rows)


def check_11(results):
    sure, cats = results
    assert [row[:2] for row in sure.rows] == [["coffee.png", "espresso"]]
    assert float(sure.rows[0][2]) > 0.9
    assert column(cats, "file") == ["chelsea_cat.png"] and column(cats, "label")[0] in CATS


def check_12(results):
    by_label, bands = results
    assert by_label.columns == ["label", "photos", "avg_probability"]
    assert sum(int(n) for n in column(by_label, "photos")) == 7
    assert len(by_label.rows) == len(set(column(by_label, "label")))          # one row per label
    espresso = by_label.rows[column(by_label, "label").index("espresso")]
    assert espresso[1] == "1" and float(espresso[2]) > 0.9
    assert dict(bands.rows) == {"confident": "1", "unsure": "6"}


def check_13(results):
    matched, unmatched = results
    assert matched.columns == ["file", "label", "product", "price"]
    rows = {row[0]: row for row in matched.rows}
    assert rows["coffee.png"] == ["coffee.png", "espresso", "Espresso beans, 1 kg", "18.90"]
    assert rows["chelsea_cat.png"][2] == "Cat food, 2 kg"
    assert sorted(column(matched, "file") + column(unmatched, "file")) == PHOTOS   # each photo once


def check_14(results):
    counts, top = results
    assert counts.rows == [["7", "1", "imagenet:1"]]
    assert top.rows[0][:2] == ["coffee.png", "espresso"] and len(top.rows) == 3
    probabilities = [float(p) for p in column(top, "probability")]
    assert probabilities == sorted(probabilities, reverse=True)


# ---- 2x run on the fine-tuned `fashion` bundle and demo.fashion_val -----------------------------

FASHION_CLASSES = ("sandal", "sneaker")
FASHION_VAL_PER_CLASS = 20


@pytest.fixture(scope="module")
def fashion_server(tmp_path_factory, imagenet_bundle_dir):
    """A server whose home has demo.fashion / demo.fashion_val and a `fashion` bundle trained from
    them by the real `sqlext ingest` and `sqlext train` (a small subset: the demo uses 300+100)."""
    from training import fashion

    from conftest import Server, make_home

    home = make_home(tmp_path_factory, imagenet_bundle_dir, "fashion_home")
    root = home.root / "samples" / "fashion"
    fashion.write_subset(root, 40, FASHION_VAL_PER_CLASS, FASHION_CLASSES)
    sqlext_cmd(home.root, "ingest", root / "train", "--table", "demo.fashion", "--label-from-dir")
    sqlext_cmd(home.root, "ingest", root / "val", "--table", "demo.fashion_val", "--label-from-dir")
    sqlext_cmd(home.root, "train", "--table", "demo.fashion", "--validation", "demo.fashion_val",
               "--name", "fashion", "--epochs", "15")
    server = Server(home.root).start()
    yield server
    server.stop()


def check_21(results):
    confident, per_class = results
    assert confident.columns == ["file", "true_label", "predicted", "probability", "model"]
    assert 0 < len(confident.rows) <= 10
    assert all(float(p) > 0.95 for p in column(confident, "probability"))
    assert set(column(confident, "model")) == {"fashion:1"}
    right = sum(t == p for t, p in zip(column(confident, "true_label"), column(confident, "predicted")))
    assert right >= 0.8 * len(confident.rows)
    assert set(column(per_class, "predicted")) <= set(FASHION_CLASSES)
    assert 0 < sum(int(n) for n in column(per_class, "confident_images")) <= 2 * FASHION_VAL_PER_CLASS


def check_22(results):
    (accuracy,) = results
    rows = {row[0]: row for row in accuracy.rows}
    assert list(rows) == [*FASHION_CLASSES, "all classes"]
    for name in FASHION_CLASSES:
        assert rows[name][1] == str(FASHION_VAL_PER_CLASS)
    total = rows["all classes"]
    assert int(total[1]) == 2 * FASHION_VAL_PER_CLASS
    assert int(total[2]) == sum(int(rows[name][2]) for name in FASHION_CLASSES)
    assert abs(float(total[3]) - int(total[2]) / int(total[1])) < 1e-3
    assert float(total[3]) >= 0.8                      # chance is 0.5


def check_23(results):
    matrix, mistakes = results
    assert matrix.columns == ["true_label", "predicted_sandal", "predicted_sneaker"]
    assert column(matrix, "true_label") == list(FASHION_CLASSES)
    cells = [[int(v) for v in row[1:]] for row in matrix.rows]
    assert all(sum(row) == FASHION_VAL_PER_CLASS for row in cells)
    assert cells[0][0] + cells[1][1] >= 0.8 * 2 * FASHION_VAL_PER_CLASS
    assert len(mistakes.rows) == cells[0][1] + cells[1][0]
    assert all(t != p for t, p in zip(column(mistakes, "true_label"), column(mistakes, "predicted")))


@dataclass
class Expect:
    check: Callable                 # called with the list of Result tables the file printed
    server: str = "server"          # the fixture giving the live server to run against
    runs: int = 1                   # 2: the file must be re-runnable (it creates tables)


EXPECTATIONS = {
    "01_label_every_photo.sql": Expect(check_01),
    "02_confident_predictions.sql": Expect(check_02),
    "03_functions_help.sql": Expect(check_03),
    "11_filter_on_predictions.sql": Expect(check_11),
    "12_count_by_label.sql": Expect(check_12),
    "13_join_products.sql": Expect(check_13, runs=2),
    "14_save_predictions.sql": Expect(check_14, runs=2),
    "21_fashion_confident_predictions.sql": Expect(check_21, server="fashion_server"),
    "22_fashion_accuracy.sql": Expect(check_22, server="fashion_server"),
    "23_fashion_confusion_matrix.sql": Expect(check_23, server="fashion_server"),
}


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*.sql")), ids=lambda p: p.name)
def test_example(script: Path, request):
    expect = EXPECTATIONS.get(script.name)
    if expect is None:
        pytest.fail(f"sql/examples/{script.name} has no expectation: add an entry to EXPECTATIONS in "
                    f"tests/test_sql_examples.py that checks what it prints")
    server = request.getfixturevalue(expect.server)
    for _ in range(expect.runs):
        result = sqlext_cmd(server.home, "sql", script, "--port", server.port)
    expect.check(parse_output(result.stdout))


def test_every_expectation_has_its_file():
    assert sorted(set(EXPECTATIONS) - {p.name for p in EXAMPLES.glob("*.sql")}) == []


def test_parse_output_reads_the_printed_tables():
    from sqlext.sqlrunner import format_table

    text = ("-- line 2\nSELECT 1;\n" + format_table(["a", "b"], [(1, None), ("x y", 2)]) +
            "\n-- line 5\nCREATE TABLE t (a INT);\n-- line 6\nSELECT 2;\n" + format_table(["c"], []) + "\n")
    assert parse_output(text) == [Result(2, ["a", "b"], [["1", "NULL"], ["x y", "2"]]), Result(6, ["c"], [])]
