-- Layers: raw (rows as landed), core (conformed), marts, ml, ops (ledgers and logs).
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS ml;
CREATE SCHEMA IF NOT EXISTS ops;

-- One row per workbook dropped (and per re-drop): what happened to it.
CREATE TABLE ops.import_ledger (
    import_id      bigserial PRIMARY KEY,
    content_hash   text        NOT NULL,
    file_name      text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('loaded', 'loaded_with_rejects', 'rejected', 'duplicate')),
    reason         text,
    mapping        text,
    rows_read      integer     NOT NULL DEFAULT 0,
    rows_loaded    integer     NOT NULL DEFAULT 0,
    rows_rejected  integer     NOT NULL DEFAULT 0,
    rows_duplicate integer     NOT NULL DEFAULT 0,
    sheets         jsonb       NOT NULL DEFAULT '[]',
    archived_path  text,
    feedback_path  text,
    run_id         text,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX import_ledger_content_hash ON ops.import_ledger (content_hash);

-- Every rejected cell (or whole row, column NULL) with the sender's sheet, row and header.
CREATE TABLE ops.import_rejects (
    import_id   bigint  NOT NULL REFERENCES ops.import_ledger (import_id),
    file_name   text    NOT NULL,
    sheet       text    NOT NULL,
    row_number  integer NOT NULL,
    column_name text,
    value       text,
    reason      text    NOT NULL
);
CREATE INDEX import_rejects_import_id ON ops.import_rejects (import_id);

-- Rows as landed from a workbook, exactly as read (header -> cell), with the import that brought them.
-- Append-only and read by import: no per-row key to maintain on the load path, and json rather
-- than jsonb (half the load cost; `row ->> 'Quantity'` works on both).
CREATE TABLE raw.excel_rows (
    import_id  bigint  NOT NULL,
    sheet      text    NOT NULL,
    row_number integer NOT NULL,
    row        json    NOT NULL
);
CREATE INDEX excel_rows_import_id ON raw.excel_rows (import_id);

CREATE TABLE core.products (
    product_id     text PRIMARY KEY,
    sku            text,
    name           text,
    category       text,
    unit_price     numeric(12, 4),
    unit_cost      numeric(12, 4),
    reorder_point  integer,
    lead_time_days integer,
    supplier       text,
    active         boolean NOT NULL DEFAULT true,
    source         text    NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE core.stores (
    store_id   text PRIMARY KEY,
    name       text,
    city       text,
    region     text,
    timezone   text,
    opened_on  date,
    source     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE core.customers (
    customer_id text PRIMARY KEY,
    name        text,
    segment     text,
    city        text,
    joined_on   date,
    source      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per order line. sold_at is an instant; sale_date is the store's local business day.
-- No foreign keys on the fact tables: a per-row FK trigger costs more than the rest of a bulk
-- load. Each loader checks references before it merges, and asset checks watch the tables.
CREATE TABLE core.sales (
    order_id    text           NOT NULL,
    line_number integer        NOT NULL CHECK (line_number >= 1),
    sold_at     timestamptz    NOT NULL,
    sale_date   date           NOT NULL,
    store_id    text           NOT NULL,
    customer_id text,
    product_id  text           NOT NULL,
    quantity    integer        NOT NULL,
    unit_price  numeric(12, 4) NOT NULL CHECK (unit_price >= 0),
    discount    numeric(6, 4)  NOT NULL DEFAULT 0 CHECK (discount BETWEEN 0 AND 1),
    revenue     numeric(14, 2) NOT NULL,
    promotion   boolean        NOT NULL DEFAULT false,
    source      text           NOT NULL,
    import_id   bigint,
    updated_at  timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, line_number)
);
CREATE INDEX sales_sale_date ON core.sales (sale_date);

-- On-hand snapshot per product, store and date.
CREATE TABLE core.stock (
    product_id text    NOT NULL,
    store_id   text    NOT NULL,
    as_of      date    NOT NULL,
    on_hand    integer NOT NULL CHECK (on_hand >= 0),
    on_order   integer NOT NULL DEFAULT 0 CHECK (on_order >= 0),
    source     text    NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, store_id, as_of)
);
