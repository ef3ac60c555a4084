"""The read API and the dashboard page (FastAPI): the warehouse's marts, forecasts, imports and alerts over
HTTP, and critical alerts pushed to browsers. It reads the warehouse and asks Dagster for runs; every figure
it serves was computed by the pipeline's assets.
"""
