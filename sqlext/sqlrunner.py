"""`sqlext sql`: run a .sql script (or one statement) against the Thrift server through PyHive.

Statements are split with sqlparse, so comments and semicolons inside string
literals are handled; each failing statement is reported with its line number.
"""
import re
import sys

import sqlparse


class StatementError(RuntimeError):
    def __init__(self, line: int, statement: str, message: str):
        super().__init__(f"line {line}: {message}")
        self.line, self.statement, self.message = line, statement, message


def _leading_noise(parsed) -> int:
    """Length of the whitespace and comments before a statement's first real token."""
    length = 0
    for token in parsed.flatten():
        if not (token.is_whitespace or token.ttype in sqlparse.tokens.Comment):
            break
        length += len(str(token))
    return length


def split(script: str) -> list:
    """Return [(line number, statement without trailing ';')] for every non-empty statement."""
    statements, offset = [], 0
    for parsed in sqlparse.parse(script):
        raw = str(parsed)
        code = sqlparse.format(raw, strip_comments=True).strip().rstrip(";").strip()
        if code:
            lead = _leading_noise(parsed)
            line = script.count("\n", 0, offset + lead) + 1
            # the statement as written from its first keyword (comments inside are harmless)
            statements.append((line, raw[lead:].strip().rstrip(";").rstrip()))
        offset += len(raw)
    return statements


def short_error(exc: Exception) -> str:
    """The one line of a HiveServer2 error that tells the user what went wrong."""
    status = getattr(getattr(exc, "args", [None])[0], "status", None)
    text = getattr(status, "errorMessage", None) or str(exc)
    python_errors = re.findall(r"^([\w.]*(?:Error|Exception|UnknownModel)[\w.]*: .+)$", text, re.M)
    python_errors = [e for e in python_errors if not e.startswith(("org.apache", "java."))]
    if "PythonException" in text and python_errors:
        return python_errors[-1].strip()
    text = re.sub(r"^Error running query: ", "", text)
    return text.strip().splitlines()[0] if text.strip() else repr(exc)


def format_table(columns: list, rows: list) -> str:
    cells = [[("NULL" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    def fmt(values):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"
    lines = [rule, fmt(columns), rule] + [fmt(r) for r in cells] + [rule, f"({len(rows)} row{'s' * (len(rows) != 1)})"]
    return "\n".join(lines)


def connect(host: str, port: int, username: str = None, password: str = None, auth: str = None,
            database: str = "default"):
    from pyhive import hive

    kwargs = dict(host=host, port=port, username=username or "sqlext", database=database)
    if password is not None:
        kwargs.update(password=password, auth=auth or "CUSTOM")
    return hive.connect(**kwargs)


def fetch(cursor) -> tuple:
    """(columns, rows) of the statement just executed; ([], []) when it returns no result set.

    For a command (CREATE, DROP, INSERT, ...) Spark's Thrift server announces a 'Result' column
    but sends no columns at all, which PyHive 0.7 cannot read (TypeError on None).
    """
    if not cursor.description:
        return [], []
    columns = [d[0] for d in cursor.description]
    try:
        return columns, cursor.fetchall()
    except TypeError:
        if columns == ["Result"]:
            return [], []
        raise


def run(script: str, host: str = "127.0.0.1", port: int = 10000, out=sys.stdout, echo: bool = True,
        connection=None, **connect_args) -> list:
    """Run every statement; return [(columns, rows)] per statement.  Raises StatementError."""
    statements = split(script)
    conn = connection or connect(host, port, **connect_args)
    results = []
    try:
        cursor = conn.cursor()
        for line, statement in statements:
            if echo:
                print(f"-- line {line}\n{statement};", file=out)
            try:
                cursor.execute(statement)
                columns, rows = fetch(cursor)
            except Exception as exc:  # the driver raises several types; report all the same way
                raise StatementError(line, statement, short_error(exc)) from None
            results.append((columns, rows))
            if echo and columns:
                print(format_table(columns, rows), file=out)
    finally:
        if connection is None:
            conn.close()
    return results
