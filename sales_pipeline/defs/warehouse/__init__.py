"""Warehouse: the conformed core tables every source merges into."""
