-- Churn messages state a customer's real rhythm: the median of their own gaps between purchase days
-- (NULL for one-time buyers), beside the mean the table already has.
ALTER TABLE ml.customer_churn ADD COLUMN median_gap_days double precision;
