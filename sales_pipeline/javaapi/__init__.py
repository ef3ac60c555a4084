"""The Java back office's REST API: its contract, its records, and the client that pulls it.

* `openapi.yaml`: the contract (OpenAPI 3.0) of `GET /api/v1/products`, `/api/v1/sales` and `/api/v1/stock`:
  bearer auth, Spring `Page` JSON, Spring error JSON, `Retry-After` on 429 and 503.
* `records`: the pydantic models of the three records (the single description of a record: the client
  validates pages with them and the demo's simulator, `sales_pipeline.demo.simulator`, serialises through
  them) and `parse_page`.
* `client` and `load`: the pull (paginated, retried) and the commit into the warehouse.
"""
