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

-- What WS /ws/notifications pushes: each alert opened (or reopened), escalated or resolved, one row per
-- event, written by a trigger in the transaction that changed ops.alerts (whoever wrote it). A client
-- that reconnects with ?after=<event_id> gets every event after it. The events of concurrent
-- transactions take turns (a transaction-long lock), so event ids become visible in id order and
-- "after the last id I read" never skips one committed later under a smaller id.
CREATE TABLE ops.alert_events (
    event_id bigserial   PRIMARY KEY,
    alert_id bigint      NOT NULL REFERENCES ops.alerts (alert_id),
    event    text        NOT NULL CHECK (event IN ('opened', 'escalated', 'resolved')),
    severity text        NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION ops.record_alert_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    happened text;
    ranks    text[] := ARRAY['info', 'warning', 'critical'];
BEGIN
    IF TG_OP = 'INSERT' THEN
        happened := CASE WHEN NEW.status = 'resolved' THEN NULL ELSE 'opened' END;
    ELSIF NEW.status = 'resolved' AND OLD.status <> 'resolved' THEN
        happened := 'resolved';
    ELSIF OLD.status = 'resolved' AND NEW.status <> 'resolved' THEN
        happened := 'opened';
    ELSIF array_position(ranks, NEW.severity) > array_position(ranks, OLD.severity) THEN
        happened := 'escalated';
    END IF;
    IF happened IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('ops.alert_events'));
        INSERT INTO ops.alert_events (alert_id, event, severity) VALUES (NEW.alert_id, happened, NEW.severity);
        -- A wake-up for the read API's listeners, delivered at commit; they read ops.alert_events.
        PERFORM pg_notify('sales_pipeline_alert_events', NEW.alert_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER alert_events AFTER INSERT OR UPDATE OF status, severity ON ops.alerts
FOR EACH ROW EXECUTE FUNCTION ops.record_alert_event();
