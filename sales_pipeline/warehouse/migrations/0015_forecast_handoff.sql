-- What a forecast shard fitted (FORECAST_SHARDS above 1), waiting for its target's `publish` step, which
-- writes every series of the target in one transaction and empties this: a failure between the shards
-- and `publish` leaves the published forecasts as they were. One row per series: the latest shard's.
CREATE TABLE ml.forecast_handoff (
    target text NOT NULL,
    scope text NOT NULL,
    scope_id text NOT NULL,
    origin date NOT NULL,
    input_hash text NOT NULL,
    result text NOT NULL,  -- the ForecastResult as JSON text (forecasting/handoff.py; NaN, which json refuses, kept)
    handed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, scope, scope_id)
);
