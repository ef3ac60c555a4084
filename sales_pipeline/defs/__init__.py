"""Dagster wiring, one folder per domain. The logic lives outside, in plain functions."""

import warnings

import dagster as dg

# Every process that loads the code location (code server, run workers, the CLI) imports this package
# first. The project uses Dagster's beta and preview APIs on purpose, on a pinned minor version: their
# warnings are Dagster's notes to itself, not something the people running the pipeline can act on.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
# The daily_cycle job holds the daily KPIs (a range of days in one run) and the daily reports (one day a run):
# Dagster warns that their backfill policies differ each time the job resolves. A backfill of the job runs one
# day a run, which is what it is for.
warnings.filterwarnings("ignore", message="Asset job daily_cycle materializes assets with varying BackfillPolicies")
