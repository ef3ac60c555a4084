"""A snapshot of the asset graph, so that an accidental change to keys, groups or deps shows in review.

After an intended change: `UPDATE_SNAPSHOTS=1 pytest sales_pipeline_tests/test_asset_graph.py`, and
commit the new snapshot with the change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from sales_pipeline.definitions import defs as code_location

defs = code_location()  # the code location, as the code server loads it
SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def describe_graph(definitions: dg.Definitions) -> dict:
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "checks": sorted(check.name for check in node.check_keys),
            "has_description": bool(node.description),
        }
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in definitions.resolve_all_job_defs() if not job.name.startswith("__")),
        "sensors": sorted(sensor.name for sensor in definitions.sensors or []),
        "schedules": sorted(schedule.name for schedule in definitions.schedules or []),
    }


def test_asset_graph_matches_the_snapshot():
    current = describe_graph(defs)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    # A missing snapshot fails: written here, it would pass whatever the graph had become.
    assert SNAPSHOT.exists(), f"no snapshot at {SNAPSHOT}: create it with UPDATE_SNAPSHOTS=1 pytest {__file__}"
    assert current == json.loads(SNAPSHOT.read_text()), "asset graph changed: see the module docstring"


def test_every_asset_is_documented_and_owned():
    for key, asset in describe_graph(defs)["assets"].items():
        assert asset["has_description"], key
        assert asset["owners"], key
        assert asset["group"] != "default", key


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


# Slow to import and needed by a few steps only: the code location, loaded by every run and command, leaves them
# to the functions that use them.
DEFERRED_IMPORTS = ("matplotlib", "scipy", "reportlab", "prophet", "statsforecast", "fastapi")


def test_loading_the_code_location_leaves_the_heavy_libraries_to_the_steps_that_need_them():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from sales_pipeline.definitions import defs; defs(); print(*sys.modules)"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent,
    ).stdout.split()  # fmt: skip
    assert [name for name in DEFERRED_IMPORTS if name in loaded] == []
