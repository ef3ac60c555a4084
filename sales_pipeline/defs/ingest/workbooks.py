"""The workbook inbox: a sensor that sees new files and an asset that imports each one.

Each workbook is one dynamic partition named after its file and content, `week-47-1a2b3c4d` for
week-47.xlsx (see `workbook_partition_key`), so the UI lists every import by a name a person knows.
The same bytes dropped again under another name run on the partition of the file that loaded them.
The checks are partitioned too: each workbook keeps its own outcome, whatever imports after it.
"""

import json
import re
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
from psycopg2.extensions import cursor as Cursor
from pydantic import Field

from sales_pipeline.excel.importer import (
    earlier_imports,
    first_rejects,
    import_workbook,
    refuse_link,
    rejects_of_first_load,
)
from sales_pipeline.excel.read import SUPPORTED_SUFFIXES, content_hash, skipped_name
from sales_pipeline.records import ImportResult
from sales_pipeline.resources import WarehouseResource, WorkbookInboxResource

workbook_partitions = dg.DynamicPartitionsDefinition(name="workbooks")
IMPORT_OP = "ingest__workbook_import"  # the op behind the asset, as run config names it
# Excel's lock files (~$name.xlsx) and half-written downloads are not workbooks to import (`skipped_name`).
# Hidden files (.name) are the tools' own (LibreOffice's .~lock.name#, Finder's .DS_Store) unless their name
# ends like a workbook (..xlsx is a workbook): those are named in the sensor's message, not imported.
STEM_CHARS = 40  # of the file name in a partition key: long enough to recognise, short enough for the UI
HASH_CHARS = 8  # of the content hash in a partition key: two contents under one name stay apart


def workbook_partition_key(file_name: str, digest: str) -> str:
    """`week 47 (Lyon).xlsx` -> `week-47-Lyon-1a2b3c4d`: the file stem in letters, digits, `_` and `-`, and
    the start of the content hash. Stable: the same name and bytes always give the same key."""
    ascii_stem = unicodedata.normalize("NFKD", Path(file_name).stem).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_]+", "-", ascii_stem).strip("-")[:STEM_CHARS].rstrip("-")
    return f"{stem or 'workbook'}-{digest[:HASH_CHARS]}"


def partition_key_for(path: Path, digest: str, imported: dict[str, tuple[int, str]]) -> str:
    """The partition of a dropped file: that of the file that loaded these bytes first, if any
    (`imported` as `earlier_imports` gives it), so a renamed re-drop adds no partition of its own."""
    first_name = imported[digest][1] if digest in imported else path.name
    return workbook_partition_key(first_name, digest)


def _content_prefix(partition_key: str) -> str:
    """The content hash's start in a key (a whole key made before keys had names: 16 hex digits)."""
    return partition_key.rsplit("-", 1)[-1]


class WorkbookImportConfig(dg.Config):
    path: str = Field(default="", description="The dropped file; blank: find it by the partition's hash.")
    mapping: str = Field(default="", description="Mapping name (data/mappings/<name>.yaml); blank: template.")
    reimport: bool = Field(default=False, description="Load again even if these bytes were imported before.")


# A multi-asset of one, because only a subsettable op may skip its output: a re-drop of imported bytes
# yields no materialization (nothing downstream refreshes), only the checks of the import it repeats.
@dg.multi_asset(
    name=IMPORT_OP,
    specs=[
        dg.AssetSpec(
            ["ingest", "workbook_import"],
            partitions_def=workbook_partitions,
            group_name="ingest",
            kinds={"excel"},
            tags={"source": "excel"},
            description=(
                "One dropped workbook imported into the warehouse: rows land in raw.excel_rows, good rows merge into "
                "core.products, core.stores, core.customers, core.sales and core.stock, bad cells go to "
                "ops.import_rejects and a feedback workbook, and ops.import_ledger records the outcome. A re-drop "
                "of bytes already imported is recorded as an observation, not a materialization: it changes "
                "nothing downstream and leaves the original import's record as the latest."
            ),
            skippable=True,
        )
    ],
    can_subset=True,
    # Partitioned checks: each workbook's outcome stays on its own partition in the UI.
    check_specs=[
        dg.AssetCheckSpec("workbook_loaded", asset=["ingest", "workbook_import"], partitions_def=workbook_partitions,
                          description="The file is a workbook with the template's (or the mapping's) sheets, and "
                                      "rows of it loaded."),
        dg.AssetCheckSpec("no_rejected_rows", asset=["ingest", "workbook_import"], partitions_def=workbook_partitions,
                          description="Every row of the workbook loaded; rejects are listed in its feedback file."),
    ],
)  # fmt: skip
def workbook_import(
    context: dg.AssetExecutionContext,
    config: WorkbookImportConfig,
    warehouse: WarehouseResource,
    inbox: WorkbookInboxResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    path = locate_workbook(context.partition_key, config.path, inbox)
    mapping = inbox.mapping_for(config.mapping)
    context.log.info(f"Importing {path} with the {mapping.name} layout")
    settings = inbox.import_settings()
    result = import_workbook(
        warehouse.transaction, path, settings, mapping, run_id=context.run_id, reimport=config.reimport
    )
    context.log.info(f"{result.file_name}: {result.status}, {result.rows_loaded} of {result.rows_read} rows loaded")
    with warehouse.transaction() as cursor:
        metadata, checks = import_metadata(cursor, result), import_check_results(cursor, result)
    if result.status == "duplicate":
        context.log_event(
            dg.AssetObservation(asset_key=context.asset_key, partition=context.partition_key, metadata=metadata)
        )
        yield from checks
        return
    yield dg.MaterializeResult(metadata=metadata, check_results=checks)


def import_check_results(cursor: Cursor, result: ImportResult) -> list[dg.AssetCheckResult]:
    """The checks of one import. A duplicate loaded nothing and runs on the partition of the import that
    loaded its bytes: it reports that import's rejects, so that a re-drop does not hide them."""
    first_load = rejects_of_first_load(cursor, result.content_hash) if result.status == "duplicate" else None
    rejected, feedback = first_load or (result.rows_rejected, result.feedback_path)
    return [
        dg.AssetCheckResult(
            check_name="workbook_loaded",
            passed=result.status != "rejected",
            metadata={"file_name": result.file_name, "reason": result.reason or ""},
        ),
        dg.AssetCheckResult(
            check_name="no_rejected_rows",
            passed=rejected == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rows_rejected": rejected, "feedback": feedback or ""},
        ),
    ]


def locate_workbook(partition_key: str, configured_path: str, inbox: WorkbookInboxResource) -> Path:
    """The file for a partition: the sensor's path, else a file with the key's content in the archive
    (folders named by the first 16 hex digits of the hash), the rejected folder or the inbox."""
    if configured_path and Path(configured_path).exists():
        return Path(configured_path)
    prefix = _content_prefix(partition_key)
    for kept in (Path(inbox.archive_dir), Path(inbox.rejected_dir)):
        originals = [p for p in sorted(kept.glob(f"{prefix}*/*")) if not p.name.endswith(".feedback.xlsx")]
        if originals:
            return originals[0]
    for candidate in inbox_files(Path(inbox.inbox_dir)):
        if content_hash(candidate).startswith(prefix):
            return candidate
    raise FileNotFoundError(
        f"workbook {partition_key}: {configured_path or 'no path given'} is gone and no file with this content "
        f"hash is in {inbox.inbox_dir} or {inbox.archive_dir}"
    )


def import_metadata(cursor: Cursor, result: ImportResult) -> dict[str, dg.MetadataValue]:
    sheets = pd.DataFrame([s.__dict__ for s in result.sheets])
    metadata: dict[str, object] = {
        "status": result.status,
        "file_name": result.file_name,
        "import_id": result.import_id,
        "rows_read": result.rows_read,
        "rows_loaded": result.rows_loaded,
        "rows_rejected": result.rows_rejected,
        "rows_duplicate": result.rows_duplicate,
        "rows_skipped": result.rows_skipped,
        "mapping": result.mapping,
        "rows_loaded_per_table": dg.MetadataValue.json({s.target: s.rows_loaded for s in result.sheets}),
        "archived": dg.MetadataValue.path(result.archived_path or ""),
    }
    if result.ignored_sheets:
        metadata["ignored_sheets"] = dg.MetadataValue.json(result.ignored_sheets)
    if result.reason:
        metadata["reason"] = result.reason
    if result.feedback_path:
        metadata["feedback_workbook"] = dg.MetadataValue.path(result.feedback_path)
    if not sheets.empty:
        shown = sheets.drop(columns=["ignored_columns"])
        metadata["sheets"] = dg.MetadataValue.md(shown.to_markdown(index=False))
    if result.rows_rejected:
        rejects = first_rejects(cursor, result.import_id, limit=20)
        metadata["rejects_preview"] = dg.MetadataValue.md(rejects.to_markdown(index=False))
    return metadata


def inbox_files(inbox_dir: Path) -> list[Path]:
    """Workbooks waiting in the inbox: top level (template) and one level of mapping folders."""
    return scan_inbox(inbox_dir)[0]


def scan_inbox(inbox_dir: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(workbooks, links, hidden files) in the inbox and its mapping folders, never following a link:
    a linked folder would make files outside the inbox look like the inbox's own."""
    workbooks: list[Path] = []
    links: list[Path] = []
    hidden: list[Path] = []
    if not inbox_dir.is_dir():
        return workbooks, links, hidden
    for entry in sorted(inbox_dir.iterdir()):
        inner = sorted(entry.iterdir()) if entry.is_dir() and not entry.is_symlink() else [entry]
        for path in inner:
            if path.is_symlink():
                links.append(path)
            elif not path.is_file() or skipped_name(path.name):
                continue
            elif path.name.startswith(".") and not path.name.lower().endswith(SUPPORTED_SUFFIXES):
                hidden.append(path)
            else:
                workbooks.append(path)
    return workbooks, links, hidden


def mapping_name(path: Path, inbox_dir: Path) -> str:
    """'' for a file at the top of the inbox, else the name of its folder (inbox/superstore/x.xlsx)."""
    relative = path.relative_to(inbox_dir)
    return relative.parts[0] if len(relative.parts) > 1 else ""


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


@dg.sensor(
    job_name="import_workbook",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one import run per new workbook in the inbox (run key: the content hash).",
)
def workbook_inbox_sensor(
    context: dg.SensorEvaluationContext, inbox: WorkbookInboxResource, warehouse: WarehouseResource
) -> dg.SensorResult:
    # Cursor: fingerprint (path, size, mtime) -> content hash of the files already requested, so
    # a file still waiting for its run is neither hashed nor requested again.
    requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    inbox_dir = Path(inbox.inbox_dir)
    workbooks, links, hidden = scan_inbox(inbox_dir)
    now = time.time()
    files = [p for p in workbooks if now - p.stat().st_mtime >= inbox.settle_seconds]
    new = {}
    for path in files:
        fingerprint = _fingerprint(path)
        if fingerprint not in requested:
            new[fingerprint] = (path, content_hash(path))
    with warehouse.transaction() as cursor:
        for link in links:  # refused at once: a link is made in one step, nothing to wait for
            kept = refuse_link(cursor, link, Path(inbox.rejected_dir))
            context.log.warning(f"{link} is a link, not a file: refused, the link moved to {kept}")
        imported = earlier_imports(cursor, [digest for _, digest in new.values()])
    run_requests = _import_requests(new, requested, imported, inbox_dir)
    partitions = []
    for request in run_requests:
        key = request.partition_key
        if not context.instance.has_dynamic_partition(workbook_partitions.name, key) and key not in partitions:
            partitions.append(key)
    current = {_fingerprint(p) for p in files}
    cursor = {f: h for f, h in requested.items() if f in current} | {f: h for f, (_, h) in new.items()}
    skip_reason = "No new workbook in the inbox"
    if hidden:
        names = ", ".join(p.name for p in hidden[:5])
        skip_reason += f"; {len(hidden)} hidden file(s) not imported (a name starting with '.'): {names}"
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[workbook_partitions.build_add_request(partitions)] if partitions else [],
        cursor=json.dumps(cursor, sort_keys=True),
        skip_reason=None if run_requests else skip_reason,
    )


def _import_requests(
    new: dict[str, tuple[Path, str]],
    requested: dict[str, str],
    imported: dict[str, tuple[int, str]],
    inbox_dir: Path,
) -> list[dg.RunRequest]:
    """One run per new file. Only the first file of some bytes is keyed by its hash: a re-drop of imported
    bytes, or a second name for bytes already requested (in this tick or one before), gets its own key,
    so that it runs too (it records the duplicate and archives the file) on the first file's partition."""
    first_names = {digest: Path(fingerprint.rsplit("|", 2)[0]).name for fingerprint, digest in requested.items()}
    first_names |= {digest: name for digest, (_, name) in imported.items()}
    claimed = set(requested.values()) | set(imported)
    run_requests = []
    for fingerprint, (path, digest) in new.items():
        partition = workbook_partition_key(first_names.setdefault(digest, path.name), digest)
        run_key = f"{digest}:again:{fingerprint}" if digest in claimed else digest
        claimed.add(digest)
        config = WorkbookImportConfig(path=str(path), mapping=mapping_name(path, inbox_dir))
        run_requests.append(
            dg.RunRequest(
                run_key=run_key,
                partition_key=partition,
                run_config=dg.RunConfig({IMPORT_OP: config}),
                tags={"workbook": path.name, "content_hash": digest},
            )
        )
    return run_requests


import_workbook_job = dg.define_asset_job(
    "import_workbook",
    selection=[workbook_import.key],
    partitions_def=workbook_partitions,
    description="Import one dropped workbook (one partition per workbook).",
    tags={"sales_pipeline/queue": "workbook_imports"},  # dagster.yaml runs these one at a time
)
