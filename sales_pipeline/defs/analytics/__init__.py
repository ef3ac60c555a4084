"""Analytics: the KPI marts, trends, stock health, top products and the dashboard record."""
