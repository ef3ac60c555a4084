"""Asking Dagster, over its GraphQL API, whether the forecasts are current, and launching their refresh.

The API computes no forecast: `POST /ml/forecast` asks Dagster whether the forecast asset is stale
(its inputs or code changed since it was materialized, Dagster's own data-version bookkeeping),
answers from the warehouse when it is not, and otherwise launches the job that refreshes it, or
points at the run of it already queued or running, so many callers start one run.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

FORECAST_JOB = "refresh_forecasts_and_anomalies"
FORECAST_ASSET = ["forecasting", "sales_forecast"]
UNFINISHED = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]
LAUNCHED_BY_TAG = "sales_pipeline/launched_by"

_STALE_STATUS = """
query ForecastStaleStatus($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode { staleStatus }
  }
}
"""

_UNFINISHED_RUNS = """
query UnfinishedRuns($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 1) {
    __typename
    ... on Runs { results { runId status } }
  }
}
"""


class DagsterUnavailable(Exception):
    """Dagster's webserver could not be reached or refused the request (the message names no secret)."""


class DagsterRuns:
    """The Dagster webserver at `url` (DAGSTER_WEBSERVER_URL)."""

    def __init__(self, url: str, timeout_s: int = 30) -> None:
        parts = urlsplit(url)
        self.url = url
        self._client = DagsterGraphQLClient(
            parts.hostname or "127.0.0.1",
            port_number=parts.port,
            use_https=parts.scheme == "https",
            timeout=timeout_s,
            path_prefix=parts.path.rstrip("/"),
        )

    def _query(self, query: str, variables: dict) -> dict:
        # The client has public methods for launching and run status only; these reads use its transport.
        try:
            return self._client._execute(query, variables)
        except DagsterGraphQLClientError as error:
            raise DagsterUnavailable(f"the Dagster webserver at {self.url} did not answer") from error

    def forecast_is_current(self) -> bool:
        """Whether the forecast asset is materialized and its inputs and code unchanged since (FRESH)."""
        found = self._query(_STALE_STATUS, {"assetKey": {"path": FORECAST_ASSET}})["assetNodeOrError"]
        return found.get("staleStatus") == "FRESH"

    def unfinished_forecast_run(self) -> tuple[str, str] | None:
        """(run id, status) of a forecast refresh queued or running, if any."""
        found = self._query(_UNFINISHED_RUNS, {"filter": {"pipelineName": FORECAST_JOB, "statuses": UNFINISHED}})
        runs = found["runsOrError"].get("results") or []
        return (runs[0]["runId"], runs[0]["status"]) if runs else None

    def launch_forecast_refresh(self) -> str:
        try:
            return self._client.submit_job_execution(FORECAST_JOB, tags={LAUNCHED_BY_TAG: "read_api"})
        except DagsterGraphQLClientError as error:
            raise DagsterUnavailable(f"Dagster at {self.url} did not launch {FORECAST_JOB}") from error

    def run_status(self, run_id: str) -> str | None:
        """Dagster's status of a run (QUEUED, STARTED, SUCCESS, FAILURE, ...), None when no such run exists."""
        try:
            return self._client.get_run_status(run_id).value
        except DagsterGraphQLClientError as error:
            if "RunNotFoundError" in str(error) or "not found" in str(error).lower():
                return None
            raise DagsterUnavailable(f"the Dagster webserver at {self.url} did not answer") from error
