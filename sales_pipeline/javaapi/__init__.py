"""The Java back office's REST API: its contract, its records, a simulator of it, and the client that pulls it.

* `openapi.yaml`: the contract (OpenAPI 3.0) of `GET /api/v1/products`, `/api/v1/sales` and `/api/v1/stock`:
  bearer auth, Spring `Page` JSON, Spring error JSON, `Retry-After` on 429 and 503.
* `records`: the pydantic models of the three records (the single description of a record: the client
  validates pages with them and the simulator serialises through them) and `parse_page`.
* `simulator`: `JavaApiSimulator`, the back office served over loopback HTTP from the same synthetic retailer
  `sales-pipeline generate` writes as workbooks, with deterministic fault injection.
* `client` and `load`: the pull (paginated, retried) and the commit into the warehouse.
"""
