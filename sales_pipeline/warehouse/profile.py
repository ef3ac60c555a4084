"""What a data engineer wants to see of a table: its size, its head, its freshness."""

from dataclasses import dataclass

import pandas as pd
from psycopg2 import sql

from sales_pipeline.warehouse.db import transaction


@dataclass(frozen=True)
class TableProfile:
    table: str
    row_count: int
    preview: pd.DataFrame  # the most recently updated rows
    last_updated: str | None  # ISO timestamp of the newest row change


def profile_table(url: str, table: str, preview_rows: int = 10) -> TableProfile:
    name = sql.SQL(".").join(map(sql.Identifier, table.split(".")))
    with transaction(url) as cursor:
        cursor.execute(sql.SQL("SELECT count(*), max(updated_at)::text FROM {}").format(name))
        row_count, last_updated = cursor.fetchone()
        cursor.execute(sql.SQL("SELECT * FROM {} ORDER BY updated_at DESC LIMIT %s").format(name), (preview_rows,))
        columns = [c.name for c in cursor.description]
        preview = pd.DataFrame(cursor.fetchall(), columns=columns)
    return TableProfile(table, row_count, preview.drop(columns=["updated_at"]), last_updated)
