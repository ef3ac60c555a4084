"""Dagster wiring, one folder per domain. The logic lives outside, in plain functions."""
