-- The Java back office's API as a source: pulls on a ledger, records as landed, incremental cursors.

-- One row per pull of an endpoint (a day of sales, the products changed since a cursor, the stock).
CREATE TABLE ops.api_pulls (
    pull_id      bigserial PRIMARY KEY,
    endpoint     text        NOT NULL,
    window_start timestamptz,            -- sales: the pulled window [start, end); products: updatedSince
    window_end   timestamptz,
    records      integer     NOT NULL DEFAULT 0,
    pages        integer     NOT NULL DEFAULT 0,
    retries      integer     NOT NULL DEFAULT 0,
    inserted     integer     NOT NULL DEFAULT 0,
    updated      integer     NOT NULL DEFAULT 0,
    removed      integer     NOT NULL DEFAULT 0,
    sales_changed_from timestamptz,
    sales_changed_to   timestamptz,
    run_id       text,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now()
);

-- Records as the API sent them, with the pull that brought them.
CREATE TABLE raw.api_records (
    pull_id  bigint NOT NULL,
    endpoint text   NOT NULL,
    record   json   NOT NULL
);
CREATE INDEX api_records_pull_id ON raw.api_records (pull_id);

-- Where the next incremental pull of an endpoint starts (kept in the warehouse, not in Dagster, so
-- it survives a new Dagster instance).
CREATE TABLE ops.api_cursors (
    endpoint   text PRIMARY KEY,
    cursor     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
