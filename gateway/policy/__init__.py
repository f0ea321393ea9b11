"""Pure decisions: residency of service reads (this package) and disclosure of orders (``gateway.legal``)."""
