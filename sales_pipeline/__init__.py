"""sales_pipeline: a Dagster project that turns a retailer's sales data into decisions."""
