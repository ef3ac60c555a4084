-- Which imports and pulls the daily KPIs have absorbed. A change is pending until the KPI refresh
-- that covers its days marks it, in the same transaction as the KPIs it writes; the sales-changed
-- sensor and `sales-pipeline refresh` work from what is pending, whatever order imports and pulls
-- committed in. Rows from before this migration start pending: the next refresh absorbs them once.
ALTER TABLE ops.import_ledger ADD COLUMN marts_absorbed_at timestamptz;
ALTER TABLE ops.api_pulls ADD COLUMN marts_absorbed_at timestamptz;
CREATE INDEX import_ledger_pending ON ops.import_ledger (import_id)
    WHERE marts_absorbed_at IS NULL AND sales_changed_from IS NOT NULL;
CREATE INDEX api_pulls_pending ON ops.api_pulls (pull_id)
    WHERE marts_absorbed_at IS NULL AND sales_changed_from IS NOT NULL;

-- The days of the KPIs each pending change touches, in the pipeline's time zone (first_sale and
-- last_sale are the days of its first and last sale instant, for messages). One day either side: a sale sent as a date without a time is a calendar day in its store, which can fall one
-- day either side of its instant's day in another time zone.
CREATE FUNCTION ops.pending_sales_changes(zone text)
RETURNS TABLE (source text, change_id bigint, first_day date, last_day date, first_sale date, last_sale date)
LANGUAGE sql STABLE AS $$
    SELECT 'import', import_id, (sales_changed_from AT TIME ZONE zone)::date - 1,
           (sales_changed_to AT TIME ZONE zone)::date + 1,
           (sales_changed_from AT TIME ZONE zone)::date, (sales_changed_to AT TIME ZONE zone)::date
    FROM ops.import_ledger WHERE marts_absorbed_at IS NULL AND sales_changed_from IS NOT NULL
    UNION ALL
    SELECT 'pull', pull_id, (sales_changed_from AT TIME ZONE zone)::date - 1,
           (sales_changed_to AT TIME ZONE zone)::date + 1,
           (sales_changed_from AT TIME ZONE zone)::date, (sales_changed_to AT TIME ZONE zone)::date
    FROM ops.api_pulls WHERE marts_absorbed_at IS NULL AND sales_changed_from IS NOT NULL
$$;
