"""Reports computed from the audit ledger: pure counting, separate rendering."""
