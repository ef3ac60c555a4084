"""Demo tooling, not run in production: a deterministic synthetic retailer and a simulator of the Java API.

* `retailer`: the synthetic retailer (`sales-pipeline generate`), with anomalies planted where forecasting
  and alerting can find them.
* `simulator`: `JavaApiSimulator`, that retailer served over loopback HTTP through the API's own records
  (`sales_pipeline.javaapi.records`), with deterministic fault injection (`sales-pipeline simulate-api`).
"""
