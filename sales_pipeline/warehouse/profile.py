"""What a data engineer wants to see of a table: its size, its head, its freshness."""

from dataclasses import dataclass

import pandas as pd
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.warehouse.db import read_frame


@dataclass(frozen=True)
class TableProfile:
    table: str
    row_count: int
    preview: pd.DataFrame  # the most recently updated rows
    last_updated: str | None  # ISO timestamp of the newest row change


def profile_table(cursor: Cursor, table: str, preview_rows: int = 10) -> TableProfile:
    name = sql.SQL(".").join(map(sql.Identifier, table.split(".")))
    cursor.execute(sql.SQL("SELECT count(*), max(updated_at)::text FROM {}").format(name))
    row_count, last_updated = cursor.fetchone()
    statement = sql.SQL("SELECT * FROM {} ORDER BY updated_at DESC LIMIT %s").format(name)
    preview = read_frame(cursor, statement, (preview_rows,))
    return TableProfile(table, row_count, preview.drop(columns=["updated_at"]), last_updated)
