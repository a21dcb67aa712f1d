"""The persistence boundary: SQL statements are built only in bot/db (the repositories and the unit of
work) and in the console's read models (bot/staff/queries); everything else calls a repository."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = ("bot/db/", "bot/staff/queries/")
# What builds a statement. Exceptions (sqlalchemy.exc), session types and engine events are not SQL.
BUILDERS = frozenset(
    {
        "select",
        "update",
        "delete",
        "insert",
        "func",
        "and_",
        "or_",
        "not_",
        "exists",
        "text",
        "case",
        "literal",
    }
)


def statement_builders_outside_db() -> list[str]:
    found = []
    for package in ("bot", "integrations", "kb"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(ALLOWED):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                    names = {alias.name for alias in node.names} & BUILDERS
                    if names and node.module in {"sqlalchemy", "sqlalchemy.sql", "sqlalchemy.sql.expression"}:
                        found.append(f"{relative}:{node.lineno} {', '.join(sorted(names))}")
    return found


def test_no_sql_statement_is_built_outside_the_repositories() -> None:
    assert statement_builders_outside_db() == []
