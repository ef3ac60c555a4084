-- What the read API and its dashboard page serve per store and per category, and the uploads it took.

-- Top products per scope: the whole business ('all', scope_id ''), each store and each category
-- ('' = products without one). Existing rows are the whole business's.
ALTER TABLE marts.top_products ADD COLUMN scope text NOT NULL DEFAULT 'all'
    CHECK (scope IN ('all', 'store', 'category'));
ALTER TABLE marts.top_products ADD COLUMN scope_id text NOT NULL DEFAULT '';
ALTER TABLE marts.top_products DROP CONSTRAINT top_products_pkey;
ALTER TABLE marts.top_products ADD PRIMARY KEY (as_of, period, scope, scope_id, rank, product_id);

-- One Dashboard document per refresh and scope: the whole business and each store.
ALTER TABLE marts.dashboard ADD COLUMN scope text NOT NULL DEFAULT 'all' CHECK (scope IN ('all', 'store'));
ALTER TABLE marts.dashboard ADD COLUMN scope_id text NOT NULL DEFAULT '';
ALTER TABLE marts.dashboard DROP CONSTRAINT dashboard_pkey;
ALTER TABLE marts.dashboard ADD PRIMARY KEY (refreshed_at, scope, scope_id);
-- The API reads the latest document of a scope.
CREATE INDEX dashboard_latest ON marts.dashboard (scope, scope_id, refreshed_at DESC);

-- Workbooks received by POST /data/import, before the inbox sensor's run records them in
-- ops.import_ledger: GET /data/imports/{hash} tells "waiting" from "never received".
CREATE TABLE ops.api_uploads (
    upload_id    bigserial PRIMARY KEY,
    content_hash text        NOT NULL,
    file_name    text        NOT NULL,  -- as stored in the inbox (the sender's name, cleaned)
    bytes        bigint      NOT NULL,
    mapping      text        NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_uploads_content_hash ON ops.api_uploads (content_hash);
