-- Analytics marts: what the dashboard, the reports and a BI tool read. Every table is rebuilt by
-- sales_pipeline.analytics.marts (a range of days, or the whole table, replaced in one transaction);
-- computed_at says when a row was last written.

-- The marts read sales by time window (day boundaries in the pipeline time zone, not sale_date).
CREATE INDEX sales_sold_at ON core.sales (sold_at);

-- KPIs per calendar day (pipeline time zone) for the whole business ('all', scope_id ''), each
-- store, category ('' = products without a category) and product. A day without sales has no rows.
CREATE TABLE marts.daily_kpis (
    day                 date           NOT NULL,
    scope               text           NOT NULL CHECK (scope IN ('all', 'store', 'category', 'product')),
    scope_id            text           NOT NULL,
    revenue             numeric(14, 2) NOT NULL,
    units               integer        NOT NULL,
    orders              integer        NOT NULL,
    customers           integer        NOT NULL, -- distinct known customers; anonymous sales count none
    average_order_value numeric(14, 2),
    revenue_with_cost   numeric(14, 2) NOT NULL, -- revenue of the lines whose product cost is known
    gross_margin        numeric(14, 2),          -- NULL when no line of the group has a known cost
    margin_rate         numeric(7, 4),           -- gross_margin / revenue_with_cost
    discount_given      numeric(14, 2) NOT NULL, -- list amount (quantity x unit price) minus revenue
    computed_at         timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (day, scope, scope_id)
);
-- Each scope's history in day order: the trends find every scope's first sale with one probe each.
CREATE INDEX daily_kpis_scope ON marts.daily_kpis (scope, scope_id, day);

-- Moving averages and growth per day for the whole business, each category and each product,
-- from the scope's first sale on. Missing days count as zero revenue.
CREATE TABLE marts.sales_trends (
    day         date           NOT NULL,
    scope       text           NOT NULL CHECK (scope IN ('all', 'category', 'product')),
    scope_id    text           NOT NULL,
    revenue     numeric(14, 2) NOT NULL,
    ma_7        numeric(14, 2) NOT NULL,
    ma_28       numeric(14, 2) NOT NULL,
    wow_growth  numeric,  -- ma_7 against ma_7 7 days earlier (0.1 = +10%); NULL when that was 0
    mom_growth  numeric,  -- ma_28 against ma_28 28 days earlier
    yoy_growth  numeric,  -- ma_28 against ma_28 364 days earlier (52 weeks: same weekdays)
    direction   text           NOT NULL CHECK (direction IN ('rising', 'steady', 'falling', 'new')),
    computed_at timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (day, scope, scope_id)
);

-- The latest stock snapshot of each product and store, against its recent demand.
CREATE TABLE marts.stock_health (
    product_id          text           NOT NULL,
    store_id            text           NOT NULL,
    as_of               date           NOT NULL,
    on_hand             integer        NOT NULL,
    on_order            integer        NOT NULL,
    reorder_point       integer,
    avg_daily_demand    numeric(12, 3) NOT NULL, -- units sold in the store over the 28 days ending at as_of, / 28
    days_of_cover       numeric(12, 1),          -- on_hand / avg_daily_demand; NULL without demand
    status              text           NOT NULL
        CHECK (status IN ('out_of_stock', 'below_reorder_point', 'healthy', 'overstock')),
    stock_value_at_cost numeric(14, 2),          -- NULL when the product's cost is unknown
    computed_at         timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, store_id)
);

-- Top products by revenue per period ending at as_of (ProductPerformance). Ties share a rank
-- (1, 2, 2, 4) and every product ranked within the top N is kept.
CREATE TABLE marts.top_products (
    as_of         date           NOT NULL,
    period        text           NOT NULL
        CHECK (period IN ('yesterday', 'last_7_days', 'last_30_days', 'month_to_date')),
    rank          integer        NOT NULL,
    product_id    text           NOT NULL,
    product_name  text,
    category      text,
    units         integer        NOT NULL,
    revenue       numeric(14, 2) NOT NULL,
    share         numeric(7, 4),  -- of the period's total revenue
    previous_rank integer,        -- rank in the period of the same length just before; NULL if unsold then
    rank_change   integer,        -- previous_rank - rank: positive = climbed
    computed_at   timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (as_of, period, rank, product_id)
);

-- One Dashboard document per refresh; the shape is documented in sales_pipeline.analytics.marts.
CREATE TABLE marts.dashboard (
    refreshed_at timestamptz NOT NULL PRIMARY KEY,
    as_of        date        NOT NULL,
    document     jsonb       NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dashboard_as_of ON marts.dashboard (as_of);
