"""Use cases: records, subjects, orders, cases, reports. No HTTP here."""
