-- A sale line's own purchase cost per unit, when the source knows it (Superstore's Profit gives it).
-- NULL: the marts use the product's current core.products.unit_cost, as before.
-- Six decimals: a cost derived by division ((Sales - Profit) / Quantity) rounds to 4 decimals badly
-- enough that quantity x cost drifts from the source by cents over a year of lines.
ALTER TABLE core.sales ADD COLUMN unit_cost numeric(16, 6) CHECK (unit_cost >= 0);
