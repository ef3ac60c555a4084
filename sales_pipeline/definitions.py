"""The code location: one Definitions object, loaded by workspace.yaml, the CLI and the tests."""

from __future__ import annotations

import dagster as dg

from sales_pipeline.defs.ingest import workbooks
from sales_pipeline.defs.warehouse import core_tables
from sales_pipeline.resources import default_resources

defs = dg.Definitions(
    assets=[workbooks.workbook_import, *core_tables.core_table_assets],
    jobs=[workbooks.import_workbook_job, core_tables.refresh_core_tables_job],
    sensors=[workbooks.workbook_inbox_sensor],
    resources=default_resources(),
)
