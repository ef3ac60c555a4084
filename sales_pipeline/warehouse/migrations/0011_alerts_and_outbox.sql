-- Alerts people act on (ops.alerts) and everything the pipeline sends (ops.notifications, the outbox).
--
-- An alert is one situation of ml.anomalies (its dedupe key), followed in the anomaly refresh's own
-- transaction (sales_pipeline/alerts/store.py). A notification is one message to one recipient on one
-- channel; the delivery run sends it and marks it sent only after the receiver accepted it
-- (sales_pipeline/alerts/outbox.py).

CREATE TABLE ops.alerts (
    alert_id        bigserial PRIMARY KEY,
    dedupe_key      text        NOT NULL UNIQUE,   -- ml.anomalies.dedupe_key: one row per situation
    kind            text        NOT NULL,          -- sales_drop, stock_risk, customer_churn
    severity        text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    entity_type     text        NOT NULL,          -- total, store, category, product, product_store, customer
    entity_id       text        NOT NULL,
    -- What routing matches on: the store and the category the alert is about (NULL: chain-wide, none).
    store_id        text,
    category        text,
    detected_on     date        NOT NULL,
    message         text        NOT NULL,          -- the detection's own sentence (English)
    numbers         jsonb       NOT NULL,
    context         jsonb       NOT NULL DEFAULT '{}',  -- names and prices the messages quote
    status          text        NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'acknowledged', 'snoozed', 'resolved')),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    acknowledged_by text,
    acknowledged_at timestamptz,
    snoozed_until   timestamptz
);
CREATE INDEX alerts_unresolved ON ops.alerts (severity, kind) WHERE status <> 'resolved';

CREATE TABLE ops.notifications (
    notification_id     bigserial PRIMARY KEY,
    kind                text        NOT NULL
                        CHECK (kind IN ('first', 'reminder', 'resolved', 'digest', 'report', 'run_failure')),
    channel             text        NOT NULL CHECK (channel IN ('email', 'webhook')),
    recipient           text        NOT NULL,  -- an email address; 'webhook' for the webhook (its URL is a secret)
    group_key           text        NOT NULL,  -- what this message is about; the same key is never sent twice
    subject             text        NOT NULL,
    body_text           text        NOT NULL,
    body_html           text,
    content             jsonb       NOT NULL DEFAULT '{}',  -- structured, for chat cards
    message_id          text        NOT NULL UNIQUE,        -- the email's Message-ID, the same on every attempt
    state               text        NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts            integer     NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    lease_until         timestamptz,            -- while sending: another run may take it over after this
    last_error          text,
    provider_message_id text,                   -- the server's id for it (SMTP queue id, webhook reply, .eml path)
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    UNIQUE (kind, channel, recipient, group_key)
);
CREATE INDEX notifications_due ON ops.notifications (next_attempt_at) WHERE state IN ('pending', 'sending');

-- Files sent with a notification: an inline chart (content_id set) or an attachment (a report's PDF),
-- as bytes or as a path read when sending.
CREATE TABLE ops.notification_attachments (
    notification_id bigint NOT NULL REFERENCES ops.notifications (notification_id) ON DELETE CASCADE,
    position        integer NOT NULL,
    filename        text    NOT NULL,
    content_type    text    NOT NULL,
    content_id      text,
    data            bytea,
    path            text,
    PRIMARY KEY (notification_id, position),
    CHECK ((data IS NULL) <> (path IS NULL))
);

-- Which alerts a notification carries; `inhibited`: named under a chain-level drop, not as a story of its own.
CREATE TABLE ops.notification_alerts (
    notification_id bigint  NOT NULL REFERENCES ops.notifications (notification_id) ON DELETE CASCADE,
    alert_id        bigint  NOT NULL REFERENCES ops.alerts (alert_id),
    inhibited       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (notification_id, alert_id)
);
CREATE INDEX notification_alerts_alert ON ops.notification_alerts (alert_id);
