"""Asset checks on the core tables: the rules a wrong number downstream would come from.

Blocking: a failure stops the assets that depend on the table in the same run.
"""

import dagster as dg

from sales_pipeline.resources import WarehouseResource
from sales_pipeline.warehouse.quality import RULES, check_rule

DESCRIPTIONS = {
    "order_lines_unique": "Each order line (order id, line number) appears once.",
    "quantities_and_prices_in_range": "Quantities 1..10,000, unit prices 0..100,000, discounts 0..1, revenue >= 0.",
    "every_sale_has_a_known_product": "Every sale's product is in core.products.",
    "no_sale_in_the_future": "No sale is dated after now (one hour of clock drift allowed).",
    "stock_not_negative": "On hand and on order are never negative.",
    "every_stock_count_has_a_known_product": "Every stock count's product is in core.products.",
}
TABLE_OF_RULE = {rule: ["core", "stock" if "stock" in rule else "sales"] for rule in RULES}


def build_check(rule: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        name=rule,
        asset=TABLE_OF_RULE[rule],
        blocking=True,
        description=DESCRIPTIONS[rule],
    )
    def check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.transaction() as cursor:
            result = check_rule(cursor, rule)
        return dg.AssetCheckResult(
            passed=result.passed,
            metadata={"failures": result.failures, "sample": dg.MetadataValue.json(result.sample)},
        )

    return check


core_table_checks = [build_check(rule) for rule in RULES]
