"""Anomalies in the retailer's words: sales drops, stock-out risks, customers who stopped buying."""
