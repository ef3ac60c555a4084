"""Asset checks on the core tables: the rules a wrong number downstream would come from.

Blocking: a failure stops the assets that depend on the table in the same run.
"""

import dagster as dg

from sales_pipeline.resources import WarehouseResource
from sales_pipeline.warehouse.quality import RULES, check_rule


def build_check(rule: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        name=rule,
        asset=RULES[rule].table.split("."),
        blocking=True,
        description=RULES[rule].description,
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
