"""The HTTP edge: app factory, routes, auth, problem+json."""
