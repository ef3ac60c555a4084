"""Forecast assets and their checks."""
