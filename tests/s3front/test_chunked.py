"""aws-chunked bodies and checksums, decoded from a real aiohttp stream: uploads signed by botocore's own signer and
chunked as AWS specifies, botocore's own encoder, and their forgeries.

Every test makes its own client credentials and data. The request's own signature (the seed of the chunk
chain) comes from botocore; the chunk and trailer signatures are computed here, from AWS's description of
the algorithm, independently of the gateway's code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import os
import secrets
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import crc32c
import pytest
from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from gateway.s3front.chunked import Body
from gateway.s3front.sigv4 import EMPTY_SHA256, UNSIGNED, SigError, Signed, verify

REGION = "eu-west-2"
SIGNED_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"


@pytest.fixture
def client() -> Credentials:
    """A client's own access key id and secret, made afresh for each test."""
    return Credentials("AK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))


@pytest.fixture
def data() -> bytes:
    """What a client uploads: more than one 64 KiB chunk."""
    return os.urandom(65536 + 1000)


@dataclass(frozen=True)
class Upload:
    """A chunked upload's request as botocore signed it, what the gateway's ``verify`` made of it, and what the
    client signs its chunks with."""

    headers: dict[str, str]  # lower-case names, as the front hands them to ``Body``
    signed: Signed  # what ``verify`` returned: what ``Body`` chains the chunk signatures from
    key: bytes  # the signing key, derived here from the client's secret
    amz_date: str
    scope: str
    seed: str  # the request's signature, from the Authorization header botocore wrote


def upload(client: Credentials, form: str, decoded_length: int, *, trailer: str | None = None, path: str = "/records/chunked") -> Upload:
    """A PUT of an aws-chunked body of ``form``, signed by botocore's base SigV4 signer (which signs the
    ``x-amz-content-sha256`` it is given; its S3 one would replace it), then verified by the gateway."""
    headers = {"x-amz-content-sha256": form, "content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(decoded_length)}
    if trailer is not None:
        headers["x-amz-trailer"] = trailer
    request = AWSRequest(method="PUT", url=f"http://127.0.0.1:9000{path}", headers=headers)
    SigV4Auth(client, "s3", REGION).add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    sent = {name.lower(): [value] for name, value in request.headers.items()} | {"host": ["127.0.0.1:9000"]}
    at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    signed = verify("PUT", path, [], sent, secret_of={client.access_key: client.secret_key}.__getitem__, now=at)
    return Upload(
        {name: values[0] for name, values in sent.items()},
        signed,
        key_of(client.secret_key, amz_date[:8]),
        amz_date,
        f"{amz_date[:8]}/{REGION}/s3/aws4_request",
        request.headers["Authorization"].rpartition("Signature=")[2],
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def key_of(secret: str, date: str) -> bytes:
    """The SigV4 signing key: HMAC-SHA256 chained over the date, region, service and ``aws4_request``."""
    return _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), REGION), "s3"), "aws4_request")


def chain(up: Upload, parts: list[bytes], *, seed: str | None = None) -> list[str]:
    """Each chunk's signature, the final empty chunk's last: an HMAC of ``AWS4-HMAC-SHA256-PAYLOAD``, the
    request time, the scope, the previous signature (``seed`` for the first, the request's own unless told),
    the SHA-256 of the empty string and the SHA-256 of the chunk's data."""
    previous = up.seed if seed is None else seed
    signatures = []
    for part in [*parts, b""]:
        text = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", up.amz_date, up.scope, previous, hashlib.sha256(b"").hexdigest(), hashlib.sha256(part).hexdigest()])
        previous = _hmac(up.key, text).hex()
        signatures.append(previous)
    return signatures


def trailer_signature(up: Upload, previous: str, lines: bytes) -> str:
    """The trailer's signature: an HMAC of ``AWS4-HMAC-SHA256-TRAILER``, the request time, the scope, the final
    chunk's signature and the SHA-256 of the trailing header lines (each ``name:value\\n``)."""
    return _hmac(up.key, "\n".join(["AWS4-HMAC-SHA256-TRAILER", up.amz_date, up.scope, previous, hashlib.sha256(lines).hexdigest()])).hex()


def framed(parts: list[bytes], signatures: list[str], trailer: bytes = b"") -> bytes:
    """``parts`` as aws-chunked chunks with ``signatures``, then the final empty chunk (the last signature) and ``trailer``."""
    chunks = [b"%x;chunk-signature=%s\r\n%s\r\n" % (len(p), s.encode(), p) for p, s in zip(parts, signatures, strict=False)]
    return b"".join(chunks) + b"0;chunk-signature=%s\r\n" % signatures[-1].encode() + (trailer or b"\r\n")


def in_chunks(data: bytes) -> list[bytes]:
    return [data[:65536], data[65536:]]


def signed_body(up: Upload, data: bytes) -> bytes:
    parts = in_chunks(data)
    return framed(parts, chain(up, parts))


def decode(raw: bytes, headers: dict[str, str], signed: Signed) -> tuple[bytes, Body]:
    async def run() -> tuple[bytes, Body]:
        stream = StreamReader(BaseProtocol(asyncio.get_running_loop()), 2**16, loop=asyncio.get_running_loop())
        stream.feed_data(raw)
        stream.feed_eof()
        body = Body(stream, headers, signed)
        return b"".join([piece async for piece in body.pieces()]), body

    return asyncio.run(run())


def test_a_chunked_upload_signed_by_botocore_verifies_with_its_own_signature_as_the_seed(client: Credentials) -> None:
    up = upload(client, SIGNED_PAYLOAD, 10)
    assert (up.signed.signature, up.signed.payload_sha256) == (up.seed, SIGNED_PAYLOAD)


def test_a_signed_chunked_body_decodes_to_its_bytes_with_every_chunk_signature_verified(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_PAYLOAD, len(data))
    assert decode(signed_body(up, data), up.headers, up.signed)[0] == data


def test_a_chunk_whose_data_was_changed_is_signature_does_not_match(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_PAYLOAD, len(data))
    parts = in_chunks(data)
    changed = [bytes([parts[0][0] ^ 1]) + parts[0][1:], parts[1]]
    with pytest.raises(SigError) as refused:
        decode(framed(changed, chain(up, parts)), up.headers, up.signed)
    assert refused.value.code == "SignatureDoesNotMatch"


def test_chunks_signed_under_another_seed_signature_are_signature_does_not_match(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_PAYLOAD, len(data))
    other = upload(client, SIGNED_PAYLOAD, len(data), path="/records/other")
    parts = in_chunks(data)
    with pytest.raises(SigError) as refused:
        decode(framed(parts, chain(up, parts, seed=other.seed)), up.headers, up.signed)
    assert refused.value.code == "SignatureDoesNotMatch"


def test_chunks_in_another_order_are_signature_does_not_match(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_PAYLOAD, len(data))
    parts = in_chunks(data)
    signatures = chain(up, parts)
    with pytest.raises(SigError) as refused:
        decode(framed(parts[::-1], signatures[1::-1] + signatures[2:]), up.headers, up.signed)
    assert refused.value.code == "SignatureDoesNotMatch"


def test_a_dropped_chunk_is_signature_does_not_match(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_PAYLOAD, len(data))
    parts = in_chunks(data)
    signatures = chain(up, parts)
    with pytest.raises(SigError) as refused:
        decode(framed(parts[1:], signatures[1:]), up.headers, up.signed)
    assert refused.value.code == "SignatureDoesNotMatch"


def test_a_chunk_without_its_signature_is_signature_does_not_match(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_PAYLOAD, len(data))
    parts = in_chunks(data)
    signatures = chain(up, parts)
    raw = framed(parts, signatures).replace(b";chunk-signature=" + signatures[1].encode(), b"")
    with pytest.raises(SigError) as refused:
        decode(raw, up.headers, up.signed)
    assert refused.value.code == "SignatureDoesNotMatch"


def test_a_body_cut_off_before_its_final_chunk_is_incomplete_body(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_PAYLOAD, len(data))
    raw = signed_body(up, data)
    with pytest.raises(SigError) as refused:
        decode(raw[: raw.index(b"0;chunk-signature=")], up.headers, up.signed)
    assert refused.value.code == "IncompleteBody"


def test_a_body_cut_off_inside_a_chunk_hands_on_no_byte_of_that_chunk(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_PAYLOAD, len(data))
    handed: list[bytes] = []

    async def run() -> None:
        stream = StreamReader(BaseProtocol(asyncio.get_running_loop()), 2**16, loop=asyncio.get_running_loop())
        stream.feed_data(signed_body(up, data)[:1000])
        stream.feed_eof()
        async for piece in Body(stream, up.headers, up.signed).pieces():
            handed.append(piece)

    with pytest.raises(SigError):
        asyncio.run(run())
    assert handed == []


def test_a_decoded_length_other_than_the_declared_one_is_incomplete_body(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_PAYLOAD, len(data) + 1)
    with pytest.raises(SigError) as refused:
        decode(signed_body(up, data), up.headers, up.signed)
    assert refused.value.code == "IncompleteBody"


def crc32c_of(data: bytes) -> bytes:
    return base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big"))


def trailed_body(up: Upload, data: bytes, checksum: bytes, *, signature: str | None = None) -> bytes:
    """``data`` in signed chunks, then an ``x-amz-checksum-crc32c`` trailer of ``checksum``, signed unless told ``signature``."""
    parts = in_chunks(data)
    signatures = chain(up, parts)
    lines = b"x-amz-checksum-crc32c:%s\n" % checksum
    if signature is None:
        signature = trailer_signature(up, signatures[-1], lines)
    return framed(parts, signatures, b"x-amz-checksum-crc32c:%s\r\nx-amz-trailer-signature:%s\r\n\r\n" % (checksum, signature.encode()))


def test_a_signed_body_with_a_signed_crc32c_trailer_decodes_and_verifies(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_TRAILER, len(data), trailer="x-amz-checksum-crc32c")
    decoded, body = decode(trailed_body(up, data, crc32c_of(data)), up.headers, up.signed)
    assert (decoded, body.checksums) == (data, {"x-amz-checksum-crc32c": crc32c_of(data).decode()})


def test_a_signed_trailer_whose_checksum_was_changed_is_signature_does_not_match(client: Credentials, data: bytes) -> None:
    up = upload(client, SIGNED_TRAILER, len(data), trailer="x-amz-checksum-crc32c")
    signature = trailer_signature(up, chain(up, in_chunks(data))[-1], b"x-amz-checksum-crc32c:%s\n" % crc32c_of(data))
    with pytest.raises(SigError) as refused:
        decode(trailed_body(up, data, crc32c_of(data + b"!"), signature=signature), up.headers, up.signed)
    assert refused.value.code == "SignatureDoesNotMatch"


def test_a_signed_trailer_whose_checksum_is_not_the_bodys_is_bad_digest(client: Credentials, data: bytes) -> None:
    # a trailer signed correctly over a checksum that does not match the data
    up = upload(client, SIGNED_TRAILER, len(data), trailer="x-amz-checksum-crc32c")
    with pytest.raises(SigError) as refused:
        decode(trailed_body(up, data, crc32c_of(data + b"!")), up.headers, up.signed)
    assert refused.value.code == "BadDigest"


def botocore_chunked(data: bytes) -> bytes:
    """The body botocore sends for an upload with a trailing CRC32 (what boto3 does over HTTPS)."""
    return AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32", chunk_size=4096).read()


def unsigned_trailer(client: Credentials) -> Signed:
    return Signed(client.access_key, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")


CRC32_TRAILER = {"content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": "10000"}


def test_botocores_aws_chunked_body_with_a_crc32_trailer_decodes_and_verifies(client: Credentials) -> None:
    data = os.urandom(10000)
    assert decode(botocore_chunked(data), CRC32_TRAILER, unsigned_trailer(client))[0] == data


def test_an_unsigned_trailer_whose_crc32_is_not_the_bodys_is_bad_digest(client: Credentials) -> None:
    data = os.urandom(10000)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big"))
    other = base64.b64encode((zlib.crc32(data) ^ 1).to_bytes(4, "big"))
    with pytest.raises(SigError) as refused:
        decode(botocore_chunked(data).replace(b":" + crc, b":" + other), CRC32_TRAILER, unsigned_trailer(client))
    assert refused.value.code == "BadDigest"


def test_an_announced_trailer_that_never_comes_is_incomplete_body(client: Credentials) -> None:
    raw = b"5\r\nhello\r\n0\r\n\r\n"
    with pytest.raises(SigError) as refused:
        decode(raw, {"content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32"}, unsigned_trailer(client))
    assert refused.value.code == "IncompleteBody"


DIGESTS = {
    "crc32": lambda data: zlib.crc32(data).to_bytes(4, "big"),
    "crc32c": lambda data: crc32c.crc32c(data).to_bytes(4, "big"),
    "sha1": lambda data: hashlib.sha1(data).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
}


def checksum_header(algorithm: str, data: bytes) -> dict[str, str]:
    return {f"x-amz-checksum-{algorithm}": base64.b64encode(DIGESTS[algorithm](data)).decode()}


@pytest.mark.parametrize("algorithm", DIGESTS)
def test_a_plain_body_whose_checksum_header_matches_is_taken_and_echoed(algorithm: str) -> None:
    data = os.urandom(5000)
    assert decode(data, checksum_header(algorithm, data), Signed("k", UNSIGNED))[1].checksums == checksum_header(algorithm, data)


@pytest.mark.parametrize("algorithm", DIGESTS)
def test_a_plain_body_whose_checksum_header_does_not_match_is_bad_digest(algorithm: str) -> None:
    data = os.urandom(5000)
    with pytest.raises(SigError) as refused:
        decode(data, checksum_header(algorithm, data + b"!"), Signed("k", UNSIGNED))
    assert refused.value.code == "BadDigest"


def test_a_checksum_algorithm_the_gateway_does_not_verify_is_refused_before_the_body_is_read() -> None:
    with pytest.raises(SigError) as refused:
        decode(b"", {"x-amz-checksum-md4": "x"}, Signed("k", EMPTY_SHA256))
    assert refused.value.code == "InvalidRequest"
