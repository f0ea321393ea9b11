"""What the S3 front's handlers share: the main app's runtime, the buckets, the caller a request's signature named."""

from __future__ import annotations

from aiohttp import web

from gateway.model import Caller
from gateway.s3front.sigv4 import Signed
from gateway.services.buckets import BucketService
from gateway.web.state import AppState

BUCKETS_KEY = web.AppKey("s3_buckets", dict)  # the configured buckets
BUCKET_SERVICE_KEY = web.AppKey("s3_bucket_service", BucketService)
MAIN_STATE_KEY = web.AppKey("s3_main_state", AppState)
S3_SECRET_KEY = web.AppKey("s3_secret_key", bytes)
VIRTUAL_HOST_KEY = web.AppKey("s3_virtual_host", str)  # "": path style only
S3_CALLER = web.RequestKey("s3_caller", Caller)
S3_BUCKET = web.RequestKey("s3_bucket", str)  # the bucket a request names ("" for the service: ListBuckets)
S3_KEY = web.RequestKey("s3_key", str)  # the object key it names ("" for a bucket operation)
S3_SIGNED = web.RequestKey("s3_signed", Signed)  # what its signature covers (the payload form; what chunk signatures chain from)


def state(request: web.Request) -> AppState:
    return request.app[MAIN_STATE_KEY]
