"""Alerts that reach people: the alert store, routing, the policy, and the one outbox everything is sent through.

Plain functions taking a cursor; the Dagster wiring is in sales_pipeline/defs/alerts/.
"""
