-- A sale line's own purchase cost per unit, when the source knows it (Superstore's Profit gives it).
-- NULL: the marts use the product's current core.products.unit_cost, as before.
ALTER TABLE core.sales ADD COLUMN unit_cost numeric(12, 4) CHECK (unit_cost >= 0);
