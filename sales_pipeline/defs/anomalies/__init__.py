"""Anomaly assets: sales drops, stock-out risks, customer churn."""
