"""A warehouse table as Dagster's catalog shows it: its columns, row count and last change, in the
standard metadata keys (`dagster/column_schema`, `dagster/row_count`), read from the database."""

import dagster as dg

from sales_pipeline.warehouse.profile import TableProfile


def table_metadata(profile: TableProfile) -> dict:
    """The catalog's metadata of a profiled table."""
    columns = [
        dg.TableColumn(
            column.name,
            type=column.type,
            description=column.description,
            constraints=dg.TableColumnConstraints(nullable=column.nullable),
        )
        for column in profile.columns
    ]
    metadata = {"dagster/column_schema": dg.TableSchema(columns=columns), "dagster/row_count": profile.row_count}
    if profile.last_updated is not None:
        metadata["last_updated"] = dg.MetadataValue.timestamp(profile.last_updated)
    return metadata
