"""Legal orders: the policy schema, order types and the pure disclosure engine."""
