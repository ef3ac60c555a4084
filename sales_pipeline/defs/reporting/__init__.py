"""Dagster wiring of the reports: the daily PDFs, the analytics export, the sensor that sends them."""
