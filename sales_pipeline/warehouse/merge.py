"""Set-based loads: COPY a frame into a staging table, then one INSERT ... ON CONFLICT merge.

Both steps run on the caller's cursor, inside the caller's transaction, so a load either commits
whole with everything else the caller wrote or leaves every table as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

COPY_ROWS = 50_000  # rows turned into text at a time for COPY
COPY_READ = 1 << 20  # characters COPY reads at a time


@dataclass(frozen=True)
class MergeCounts:
    """What a merge did to the target table."""

    inserted: int
    updated: int
    unchanged: int
    # The smallest and largest value of the merge's `span` column among the rows it wrote.
    span: tuple[object, object] | None = None


def stage_frame(
    cursor: Cursor,
    frame: pd.DataFrame,
    like_table: str,
    staging_table: str,
    extra_columns: dict[str, str] | None = None,
    index_as: str | None = None,
) -> None:
    """COPY `frame` into a temporary table typed like `like_table`'s columns of the same names.

    `extra_columns` adds staging-only columns (name -> SQL type) that the merge turns into
    target columns. `index_as` stages the frame's index too, as an integer column of that name
    (the importer's Excel row numbers). The staging table is dropped at commit.
    """
    extra_columns = (extra_columns or {}) | ({index_as: "integer"} if index_as else {})
    table_columns = [c for c in frame.columns if c not in extra_columns]
    # A workbook may bring several sheets to one table (Sales, Sales (2)): each is staged and merged in turn.
    cursor.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(staging_table)))
    cursor.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(staging_table),
            sql.SQL(", ").join(map(sql.Identifier, table_columns)),
            _qualified(like_table),
        )
    )
    for name, sql_type in extra_columns.items():
        cursor.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} " + sql_type).format(
                sql.Identifier(staging_table), sql.Identifier(name)
            )
        )
    # Unquoted empty fields are NULL in COPY's CSV format; the importer turns blanks into NULLs.
    # (A hand-built text format measured slower than pandas' C CSV writer.) Written a slice at a time:
    # the CSV of a million rows is never held whole.
    slices = (
        frame.iloc[start : start + COPY_ROWS].to_csv(index=index_as is not None, header=False)
        for start in range(0, len(frame), COPY_ROWS)
    )
    columns = ([index_as] if index_as else []) + list(frame.columns)
    cursor.copy_expert(
        sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)")
        .format(sql.Identifier(staging_table), sql.SQL(", ").join(map(sql.Identifier, columns)))
        .as_string(cursor),
        TextStream(slices),
        size=COPY_READ,
    )


class TextStream:
    """A file for COPY to read from, fed by an iterator of texts: one of them in memory at a time."""

    def __init__(self, texts: Iterator[str]) -> None:
        self._texts = texts
        self._text = ""
        self._offset = 0

    def read(self, size: int = -1) -> str:
        while self._offset >= len(self._text):
            text = next(self._texts, None)
            if text is None:
                return ""
            self._text, self._offset = text, 0
        end = len(self._text) if size < 0 else self._offset + size
        piece = self._text[self._offset : end]
        self._offset += len(piece)
        return piece

    def readline(self, size: int = -1) -> str:  # psycopg2 asks for read() only; a file has both
        return self.read(size)


def escape_copy_text(value: str) -> str:
    """A value for COPY's text format, where backslash, tab and line breaks are special."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def merge_staged(
    cursor: Cursor,
    target_table: str,
    staged_rows: int,
    select: sql.Composable,
    columns: Sequence[str],
    key: Sequence[str],
    params: dict | None = None,
    bookkeeping: Sequence[str] = (),
    span: str | None = None,
    update_only_if: sql.Composable | None = None,
) -> MergeCounts:
    """Upsert the rows `select` yields into `target_table`, touching only rows that changed.

    `columns` are the target columns `select` produces, key included. Rows whose values are all
    equal to the stored ones are left alone (no new row version, `updated_at` kept), which is what
    makes re-running an import a no-op. `bookkeeping` columns (which import wrote a row) are written
    with a change but do not count as one. With `span`, the counts also carry the range of that
    column over the rows written (e.g. the sale instants an import changed). `update_only_if`, a
    condition on the stored row `t`, protects rows from this merge (e.g. lines the API owns).
    """
    updatable = [c for c in columns if c not in key]
    compared = [c for c in updatable if c not in bookkeeping]
    target = sql.Identifier("t")
    query = sql.SQL(
        "WITH merged AS ("
        " INSERT INTO {target_table} AS t ({columns}) {select}"
        " ON CONFLICT ({key}) DO UPDATE SET {assignments}, updated_at = now()"
        " WHERE ({current}) IS DISTINCT FROM ({incoming}) AND {protect}"
        " RETURNING (xmax = 0) AS inserted, {span} AS span"
        ") SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted), min(span), max(span)"
        " FROM merged"
    ).format(
        span=sql.Identifier(span) if span else sql.NULL,
        protect=update_only_if or sql.SQL("true"),
        target_table=_qualified(target_table),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        select=select,
        key=sql.SQL(", ").join(map(sql.Identifier, key)),
        assignments=sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in updatable
        ),
        current=sql.SQL(", ").join(sql.SQL("{}.{}").format(target, sql.Identifier(c)) for c in compared),
        incoming=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in compared),
    )
    cursor.execute(query, params or {})
    inserted, updated, first, last = cursor.fetchone()
    return MergeCounts(inserted, updated, staged_rows - inserted - updated, (first, last) if span else None)


def merge_frame(
    cursor: Cursor,
    target_table: str,
    frame: pd.DataFrame,
    key: Sequence[str],
    update_only_if: sql.Composable | None = None,
) -> MergeCounts:
    """Stage `frame` (columns named like the target's) and merge it as it is."""
    staging = "stage_" + target_table.replace(".", "_")
    stage_frame(cursor, frame, target_table, staging)
    select = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, frame.columns)), sql.Identifier(staging)
    )
    return merge_staged(
        cursor, target_table, len(frame), select, list(frame.columns), key, update_only_if=update_only_if
    )


def _qualified(table: str) -> sql.Composable:
    return sql.SQL(".").join(map(sql.Identifier, table.split(".")))
