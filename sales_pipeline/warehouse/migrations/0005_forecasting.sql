-- Forecasts, their backtests and accuracy, anomalies and churn (schema ml).
--
-- A series is (target, scope, scope_id): target 'sales' is revenue per day for scope all (scope_id
-- ''), store, category or product; target 'demand' is units per day for scope 'product_store' with
-- scope_id '<product_id>@<store_id>'. `origin` is the last day of history a forecast was made from.

-- Every published forecast, kept per origin: the forecast issued before a day is what that day's
-- actuals are compared with.
CREATE TABLE ml.forecasts (
    target        text    NOT NULL CHECK (target IN ('sales', 'demand')),
    scope         text    NOT NULL,
    scope_id      text    NOT NULL,
    origin        date    NOT NULL,
    day           date    NOT NULL CHECK (day > origin),
    model         text    NOT NULL,
    yhat          double precision NOT NULL CHECK (yhat >= 0),
    yhat_lower_80 double precision NOT NULL CHECK (yhat_lower_80 >= 0),
    yhat_upper_80 double precision NOT NULL,
    yhat_lower_95 double precision NOT NULL CHECK (yhat_lower_95 >= 0),
    yhat_upper_95 double precision NOT NULL,
    closed        boolean NOT NULL DEFAULT false,  -- expected closed (store shut that weekday lately)
    PRIMARY KEY (target, scope, scope_id, origin, day)
);
CREATE INDEX forecasts_day ON ml.forecasts (target, day);

-- The latest state of each series: what was published from which origin, and the input hash that
-- decides whether the next run must refit it.
CREATE TABLE ml.forecast_series (
    target       text    NOT NULL,
    scope        text    NOT NULL,
    scope_id     text    NOT NULL,
    origin       date    NOT NULL,
    input_hash   text    NOT NULL,
    status       text    NOT NULL CHECK (status IN ('forecast', 'fallback', 'skipped')),
    model        text,                -- prophet | seasonal_naive | recent_mean; NULL when skipped
    reason       text    NOT NULL,    -- why this model (or why none), in words
    history_days integer NOT NULL,
    fit_seconds  double precision,
    sigma        double precision,    -- error scale behind the intervals (backtest RMSE)
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, scope, scope_id)
);

-- What each candidate model predicted at each backtest origin; reused while the history up to the
-- origin is unchanged (input_hash), scored against the current actuals.
CREATE TABLE ml.backtest_forecasts (
    target     text NOT NULL,
    scope      text NOT NULL,
    scope_id   text NOT NULL,
    origin     date NOT NULL,
    model      text NOT NULL,
    day        date NOT NULL,
    yhat       double precision NOT NULL,
    input_hash text NOT NULL,
    PRIMARY KEY (target, scope, scope_id, origin, model, day)
);

-- Rolling-origin backtest scores per series and candidate model (the latest origins).
CREATE TABLE ml.forecast_accuracy (
    target      text    NOT NULL,
    scope       text    NOT NULL,
    scope_id    text    NOT NULL,
    model       text    NOT NULL,
    origins     integer NOT NULL,
    first_origin date   NOT NULL,
    last_origin  date   NOT NULL,
    mase        double precision,   -- NULL when the history has no week-on-week variation to scale by
    smape       double precision,
    mae         double precision NOT NULL,
    rmse        double precision NOT NULL,
    chosen      boolean NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, scope, scope_id, model)
);

-- Anomalies of every kind, one row per situation; the dedupe key stays the same while the
-- situation lasts, so each is alerted once.
CREATE TABLE ml.anomalies (
    dedupe_key   text PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('sales_drop', 'stock_risk', 'customer_churn')),
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    entity_type  text NOT NULL,
    entity_id    text NOT NULL,
    detected_on  date NOT NULL,      -- the day of data the detection looked at
    message      text NOT NULL,
    numbers      jsonb NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);
CREATE INDEX anomalies_active ON ml.anomalies (kind) WHERE active;

-- Each customer's purchase rhythm and how improbable their current silence is.
CREATE TABLE ml.customer_churn (
    customer_id     text PRIMARY KEY,
    as_of           date    NOT NULL,
    purchases       integer NOT NULL,   -- distinct purchase days
    first_purchase  date    NOT NULL,
    last_purchase   date    NOT NULL,
    mean_gap_days   double precision,   -- NULL for one-time buyers
    days_silent     integer NOT NULL,
    p_silence       double precision,   -- probability of a silence this long if still active
    status          text    NOT NULL CHECK (status IN ('active', 'at_risk', 'churned', 'one_time_recent', 'one_time_lapsed')),
    computed_at     timestamptz NOT NULL DEFAULT now()
);

-- The churn rate KPI per day it was computed.
CREATE TABLE ml.churn_kpis (
    as_of            date PRIMARY KEY,
    repeat_customers integer NOT NULL,
    active           integer NOT NULL,
    at_risk          integer NOT NULL,
    churned          integer NOT NULL,
    churn_rate       double precision,  -- churned / repeat customers
    one_time_recent  integer NOT NULL,
    one_time_lapsed  integer NOT NULL,
    computed_at      timestamptz NOT NULL DEFAULT now()
);
