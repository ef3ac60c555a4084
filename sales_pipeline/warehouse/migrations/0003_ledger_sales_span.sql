-- The span of sale instants an import inserted or changed: the marts recompute just those days.
ALTER TABLE ops.import_ledger ADD COLUMN sales_changed_from timestamptz;
ALTER TABLE ops.import_ledger ADD COLUMN sales_changed_to timestamptz;
