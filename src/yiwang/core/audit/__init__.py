"""The audit trail: append-only, chained with SM3, written in the same transaction as the
change it records."""
