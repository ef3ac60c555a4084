-- Calendar days and exact revenue.

-- A sale sent as a date without a time (Superstore's Order Date) happened on that calendar day,
-- whatever time zone the reports are made in; its sold_at (midnight in the store's zone) is only a
-- placeholder instant. time_given says whether the sender gave a time of day: the Java API's soldAt
-- always does; the importer sets it per line (a time of 00:00:00 counts as none: it is how most
-- tools write a bare date). Writers that say nothing give an instant: true.
ALTER TABLE core.sales ADD COLUMN time_given boolean NOT NULL DEFAULT true;

-- Existing rows, decided as the importer now decides: API lines (and any other source) keep true;
-- an Excel line gave no time when its sold_at is midnight of its sale_date in its store's zone,
-- which is what the importer stored for a date-only cell (or a 00:00:00 time). A store without a
-- zone was read in PIPELINE_TIMEZONE, which SQL cannot see; UTC is tried (the default). Where it
-- was another zone the lines stay true and keep counting on the day of their instant, as before.
-- A zone PostgreSQL does not know is skipped rather than failing the migration.
WITH zones AS MATERIALIZED (  -- filtered before any zone is used
    SELECT st.store_id, coalesce(st.timezone, 'UTC') AS zone
    FROM core.stores AS st
    WHERE coalesce(st.timezone, 'UTC') IN (SELECT name FROM pg_timezone_names)
)
UPDATE core.sales AS s SET time_given = false
FROM zones AS z
WHERE z.store_id = s.store_id
  AND s.source = 'excel'
  AND s.sold_at = s.sale_date::timestamp AT TIME ZONE z.zone;

-- The one definition of the day a sale counts on in reports made in `zone` (the marts, forecasts,
-- anomalies): the local day of its instant when the sender gave a time, else the day the sender
-- wrote. SQL and immutable, so the planner inlines it into the queries that call it.
CREATE FUNCTION core.reporting_day(sold_at timestamptz, sale_date date, time_given boolean, zone text)
RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN time_given THEN (sold_at AT TIME ZONE zone)::date ELSE sale_date END $$;

-- Whether a sale counts on a day first_day..last_day in `zone`. A line's reporting day is never more
-- than 2 days from its sale_date (its store's local day; UTC offsets span -12..+14 hours), so the
-- first condition, inlined with the function, lets a span of days be read through the sale_date
-- index. Pass constants for the days: an argument used twice is not inlined when it is a subquery.
CREATE FUNCTION core.reported_between(
    sold_at timestamptz, sale_date date, time_given boolean, zone text, first_day date, last_day date
)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT sale_date BETWEEN first_day - 2 AND last_day + 2
       AND core.reporting_day(sold_at, sale_date, time_given, zone) BETWEEN first_day AND last_day
$$;

-- Revenue as the sender gave it (Superstore's Sales has 3 or 4 decimals on 4,001 of 9,994 lines): rounding
-- each line to the cent made the warehouse total drift from the source's. Unbounded numeric keeps it
-- (no table rewrite); the marts' money sums follow so that adding days up reconciles with the lines.
-- Lines already stored keep the cents they were rounded to until their workbook is imported again
-- (the import asset's `reimport: true`): the merge then updates exactly those lines.
ALTER TABLE core.sales ALTER COLUMN revenue TYPE numeric;
ALTER TABLE marts.daily_kpis
    ALTER COLUMN revenue TYPE numeric,
    ALTER COLUMN revenue_with_cost TYPE numeric,
    ALTER COLUMN gross_margin TYPE numeric,
    ALTER COLUMN discount_given TYPE numeric;
ALTER TABLE marts.sales_trends ALTER COLUMN revenue TYPE numeric;
ALTER TABLE marts.top_products ALTER COLUMN revenue TYPE numeric;
