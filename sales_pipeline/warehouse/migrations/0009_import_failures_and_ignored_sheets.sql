-- An import that crashed is recorded (status failed, with the error) and its file put away in rejected/,
-- so that it is neither retried forever nor forgotten; and the sheets a workbook carried that were not
-- read, each with why (sheet name -> reason).
ALTER TABLE ops.import_ledger DROP CONSTRAINT import_ledger_status_check;
ALTER TABLE ops.import_ledger ADD CONSTRAINT import_ledger_status_check
    CHECK (status IN ('loaded', 'loaded_with_rejects', 'rejected', 'duplicate', 'failed'));
ALTER TABLE ops.import_ledger ADD COLUMN ignored_sheets jsonb NOT NULL DEFAULT '{}';
