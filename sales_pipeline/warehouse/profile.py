"""What a data engineer wants to see of a table: its columns, its size, its head, its freshness."""

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.warehouse.db import read_frame


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as PostgreSQL writes it: numeric(12,2), timestamp with time zone
    nullable: bool
    description: str | None  # the column's COMMENT, if it has one


@dataclass(frozen=True)
class TableProfile:
    table: str
    columns: list[Column]
    row_count: int
    preview: pd.DataFrame  # the most recently changed rows
    last_updated: dt.datetime | None  # the newest row change


def table_columns(cursor: Cursor, table: str) -> list[Column]:
    """The table's columns in their order, as the database defines them."""
    cursor.execute(
        "SELECT attname, format_type(atttypid, atttypmod), NOT attnotnull, col_description(attrelid, attnum)"
        " FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,),
    )
    return [Column(*row) for row in cursor.fetchall()]


def profile_table(
    cursor: Cursor, table: str, changed_column: str = "updated_at", preview_rows: int = 10
) -> TableProfile:
    """The table's columns, row count, newest change (by `changed_column`) and its `preview_rows` latest rows."""
    name = sql.SQL(".").join(map(sql.Identifier, table.split(".")))
    changed = sql.Identifier(changed_column)
    cursor.execute(sql.SQL("SELECT count(*), max({}) FROM {}").format(changed, name))
    row_count, last_updated = cursor.fetchone()
    statement = sql.SQL("SELECT * FROM {} ORDER BY {} DESC LIMIT %s").format(name, changed)
    preview = read_frame(cursor, statement, (preview_rows,))
    return TableProfile(table, table_columns(cursor, table), row_count, preview.drop(columns=[changed_column]),
                        last_updated)  # fmt: skip
