"""The daily PDF reports and the analytics export workbook: plain functions, no Dagster."""
