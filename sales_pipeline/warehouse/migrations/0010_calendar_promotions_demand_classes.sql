-- Known closures and promotions as forecast inputs, stores told apart from channels, and the
-- demand class and honest scoring of each forecast series.

-- A store is a physical shop ('store') or a sales channel ('channel': a region, a web shop, a
-- catalogue). Only a physical store's day without a sale may be taken for a closure (see
-- sales_pipeline/forecasting/calendar.py); NULL counts as a store.
ALTER TABLE core.stores ADD COLUMN kind text CHECK (kind IN ('store', 'channel'));

-- The store calendar: a date (or every such weekday) on which a store is closed, or open by
-- exception (a Sunday opening of a store closed on Sundays). store_id NULL means every store; a row
-- names a date or a weekday (a row with both is read as its date, one with neither says nothing).
-- A date outranks a weekday.
CREATE TABLE core.store_calendar (
    store_id   text,
    day        date,
    weekday    text CHECK (weekday IN ('Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday')),
    open       boolean NOT NULL DEFAULT false,
    note       text,
    source     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (store_id, day, weekday)
);

-- Promotions known ahead: a product (or, product NULL, every product of a category, or with both
-- NULL every product) in a store (or every store, NULL), from starts_on to ends_on inclusive.
CREATE TABLE core.promotions (
    product_id text,
    category   text,
    store_id   text,
    starts_on  date NOT NULL,
    ends_on    date NOT NULL CHECK (ends_on >= starts_on),
    name       text,
    source     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (product_id, category, store_id, starts_on)
);
CREATE INDEX promotions_days ON core.promotions (ends_on, starts_on);

-- How a series sells (Syntetos-Boylan: smooth, erratic, intermittent, lumpy) and its numbers.
ALTER TABLE ml.forecast_series
    ADD COLUMN demand_class text CHECK (demand_class IN ('smooth', 'erratic', 'intermittent', 'lumpy')),
    ADD COLUMN adi double precision,           -- mean interval between selling days, in open days
    ADD COLUMN cv2 double precision,           -- squared coefficient of variation of the non-zero days
    ADD COLUMN reconciliation text;            -- how the published forecast was made to add up, if it was

-- Honest scores: how many held-out open days were scored, and whether every one of them was a zero
-- forecast for a zero sale (a trivially perfect score, left out of the medians).
ALTER TABLE ml.forecast_accuracy
    ADD COLUMN scored_days integer,
    ADD COLUMN trivially_zero boolean NOT NULL DEFAULT false;

-- Churn messages state a customer's real rhythm: the median of their own gaps between purchase days
-- (NULL for one-time buyers), beside the mean the table already has.
ALTER TABLE ml.customer_churn ADD COLUMN median_gap_days double precision;
