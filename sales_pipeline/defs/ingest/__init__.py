"""Ingest: workbooks dropped in the inbox (and, later, the Java back office)."""
