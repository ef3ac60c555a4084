"""How a run's steps execute (SALES_PIPELINE_RUN_EXECUTOR).

`multiprocess`, the default: Dagster's default executor, the steps in processes of the run's own worker (on one
machine, in a Docker container, in a Kubernetes Job). `k8s`: in a Kubernetes cluster, each step a Job of its
own, with the run's image, settings and volumes, so that independent steps (the forecast shards) run on several
nodes at once; it needs the image's `k8s` extra (dagster-k8s).
"""

from __future__ import annotations

import dagster as dg

from sales_pipeline.settings import Settings

# Steps of one run in Jobs at the same time: what the `warehouse` pool lets through, and the forecast shards.
K8S_MAX_CONCURRENT_STEPS = 8


def run_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The executor the settings ask for; None: Dagster's default."""
    if settings.run_executor != "k8s":
        return None
    from dagster_k8s import k8s_job_executor  # only there with the k8s extra

    return k8s_job_executor.configured({"max_concurrent": K8S_MAX_CONCURRENT_STEPS})
