-- The engineers are told of an asset its freshness policy says is late (defs/alerts/delivery.py,
-- late_assets_sensor): one more kind of message in the outbox.
ALTER TABLE ops.notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE ops.notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('first', 'reminder', 'resolved', 'digest', 'report', 'run_failure', 'late_asset'));
