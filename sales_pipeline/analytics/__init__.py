"""Analytics: the marts (daily KPIs, sales trends, stock health, top products) and the dashboard record.

The logic lives in `marts` as plain functions on a database cursor, set-based SQL run in PostgreSQL;
the Dagster assets that call them live with the other definitions.
"""
