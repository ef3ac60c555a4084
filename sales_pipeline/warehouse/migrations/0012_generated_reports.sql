-- The daily PDF reports (GeneratedReport): one row per day, scope and language, replaced when the
-- report is built again; sent_to lists who it is emailed to (its messages in ops.notifications, one per
-- recipient, sent by the alerts' delivery run).
CREATE TABLE ops.generated_reports (
    day      date        NOT NULL,
    scope    text        NOT NULL,  -- all | store:<store_id> | category:<category>
    locale   text        NOT NULL,
    path     text        NOT NULL,
    pages    integer     NOT NULL CHECK (pages > 0),
    bytes    bigint      NOT NULL CHECK (bytes > 0),
    sha256   text        NOT NULL,
    headline jsonb       NOT NULL,  -- the cover's KPIs: period -> kpi -> {value, previous, change}
    built_at timestamptz NOT NULL DEFAULT now(),
    sent_to  text[]      NOT NULL DEFAULT '{}',
    PRIMARY KEY (day, scope, locale)
);
