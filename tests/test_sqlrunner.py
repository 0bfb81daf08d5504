"""`sqlext sql`: script splitting, results printed, failing statement named by line."""
from sqlext.sqlrunner import split

from conftest import sqlext_cmd

SCRIPT = """-- a comment; with a semicolon
SELECT 'a;b' AS s;  /* block; comment */

SELECT count(*) AS n
  FROM demo.photos   -- trailing comment
 WHERE path LIKE '%;%' OR true;
"""


def test_split_keeps_semicolons_inside_strings_and_numbers_lines():
    statements = split(SCRIPT)
    assert [line for line, _ in statements] == [2, 4]
    assert statements[0][1].startswith("SELECT 'a;b' AS s")
    assert "WHERE path LIKE '%;%'" in statements[1][1]


def test_sql_command_runs_a_script(server, tmp_path):
    script = tmp_path / "q.sql"
    script.write_text(SCRIPT)
    result = sqlext_cmd(server.home, "sql", script, "--port", server.port)
    assert "| a;b |" in result.stdout
    assert "| 7 " in result.stdout


def test_sql_command_reports_failing_line(server, tmp_path):
    script = tmp_path / "bad.sql"
    script.write_text("SELECT 1;\n\n-- next one fails\nSELECT * FROM no_such_table;\nSELECT 2;\n")
    result = sqlext_cmd(server.home, "sql", script, "--port", server.port, check=False)
    assert result.returncode == 1
    assert "error at line 4" in result.stderr and "no_such_table" in result.stderr
    assert "| 2 " not in result.stdout
