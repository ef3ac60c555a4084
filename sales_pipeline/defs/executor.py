"""How a run's steps execute (SALES_PIPELINE_RUN_EXECUTOR).

`in_process`, the default: the steps one after the other in the run's own worker process. The steps are light
(SQL in the warehouse, a chart, a PDF) and a process per step cost more than most of them (3 to 7 s on a
2-core machine, for Python and the code location to load again); the heavy one, the forecasts, fits in
FORECAST_WORKERS processes of its own whatever the executor. `multiprocess`: Dagster's default executor, each
step in a process of its own, so that independent steps of a run run side by side (on a machine, in a Docker
container, in a Kubernetes pod). `k8s`: in a Kubernetes cluster, each step a Job of its own, with the run's
image, settings and volumes, so that independent steps run on several nodes at once; it needs the image's
`k8s` extra (dagster-k8s).
"""

from __future__ import annotations

import dagster as dg

from sales_pipeline.settings import Settings

# Steps of one run in Jobs at the same time: what the `warehouse` pool lets through, and the forecast shards.
K8S_MAX_CONCURRENT_STEPS = 8


def run_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The executor the settings ask for; None: Dagster's default (multiprocess)."""
    if settings.run_executor == "in_process":
        return dg.in_process_executor
    if settings.run_executor != "k8s":
        return None
    from dagster_k8s import k8s_job_executor  # only there with the k8s extra

    return k8s_job_executor.configured({"max_concurrent": K8S_MAX_CONCURRENT_STEPS})
