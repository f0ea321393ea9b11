"""Residency of internal service reads: the pure decision (``decision``). Orders are decided by ``gateway.legal``."""
