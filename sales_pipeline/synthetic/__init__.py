"""A deterministic synthetic retailer, with anomalies planted where forecasting and alerting can find them."""
