"""Excel workbooks: the import template, reading, validation, feedback."""
