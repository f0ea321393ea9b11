"""The S3 front: the S3 REST API (path-style) on its own port, over the same records service as the REST API."""
