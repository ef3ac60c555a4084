"""What every asset of the code location shares, applied once to all of them (definitions.py).

- **Owners**: the data engineering team.
- **Kinds**: every asset reads or writes the PostgreSQL warehouse (`postgres`); an asset keyed
  `core/<name>` or `marts/<name>` is that table (`table`, and its `dagster/table_name`); the others
  add what they are (excel, api, prophet, python).
- **Tags**: its group's domain and the warehouse layer it fills; the ingest assets add their source.
- **Automation**: every asset follows its parents by declarative automation (`AFTER_ANY_UPSTREAM_UPDATE`),
  except the groups sensors and schedules run (ingest: the inbox sensor and the nightly pulls; alerts:
  the delivery sensor), the partitioned daily KPIs (the sales-changed sensor and the nightly schedule
  request them) and an asset that states a condition of its own.
"""

import dagster as dg

OWNERS = ["team:data-engineering"]
RUN_BY_SENSORS = ("ingest", "alerts")
TABLE_SCHEMAS = ("core", "marts")
TAGS = {
    "ingest": {"domain": "ingest"},
    "warehouse": {"domain": "warehouse", "layer": "core"},
    "analytics": {"domain": "analytics", "layer": "marts"},
    "forecasting": {"domain": "forecasting", "layer": "ml"},
    "anomalies": {"domain": "alerts", "layer": "ml"},
    "alerts": {"domain": "alerts", "layer": "ops"},
    "reporting": {"domain": "reporting", "layer": "reports"},
}
# eager() also waits until no dependency has a missing partition. Partitioned dependencies always
# miss some (a workbook whose import failed, days before the first sale), so the assets after them
# drop that clause: they refresh whenever any partition upstream was updated.
AFTER_ANY_UPSTREAM_UPDATE = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())


def with_conventions(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The asset with the shared owners, kinds, tags and automation added to what it states itself."""
    spec = spec.merge_attributes(owners=OWNERS, kinds={"postgres"}, tags={**TAGS[spec.group_name], **spec.tags})
    schema = spec.key.path[0]
    if schema in TABLE_SCHEMAS:  # one table of the warehouse, named as its key
        spec = spec.merge_attributes(kinds={"table"}, metadata={"dagster/table_name": f"{schema}.{spec.key.path[1]}"})
    follows = (
        spec.group_name not in RUN_BY_SENSORS and spec.partitions_def is None and spec.automation_condition is None
    )
    return spec.replace_attributes(automation_condition=AFTER_ANY_UPSTREAM_UPDATE) if follows else spec
