"""aws-chunked bodies and checksums, decoded from a real aiohttp stream: AWS's published examples, botocore's own encoder, and their forgeries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import zlib
from datetime import UTC, datetime

import pytest
from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from gateway.s3front.chunked import Body
from gateway.s3front.sigv4 import EMPTY_SHA256, UNSIGNED, SigError, Signed, signing_key, verify

# The example of AWS's "Signature Calculations for the Authorization Header: Transferring Payload in Multiple Chunks"
# (a documented example key, not a credential): 66560 bytes of `a` sent as chunks of 65536, 1024 and 0 bytes.
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_DATE = "20130524T000000Z"
EXAMPLE_SCOPE = "20130524/us-east-1/s3/aws4_request"
EXAMPLE_KEY = signing_key(EXAMPLE_SECRET, "20130524", "us-east-1", "s3")
EXAMPLE_DATA = b"a" * 66560
SIGNED_HEADERS = "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
# the same document's example with a trailing CRC32C (x-amz-checksum-crc32c:sOO8/Q==)
TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
TRAILER_CHUNK_SIGNATURES = [
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
]
TRAILER_SIGNATURE = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


def example_headers() -> dict[str, list[str]]:
    return {
        "host": ["s3.amazonaws.com"],
        "x-amz-date": [EXAMPLE_DATE],
        "x-amz-storage-class": ["REDUCED_REDUNDANCY"],
        "authorization": [f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/{EXAMPLE_SCOPE},SignedHeaders={SIGNED_HEADERS},Signature={SEED}"],
        "x-amz-content-sha256": ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD"],
        "content-encoding": ["aws-chunked"],
        "x-amz-decoded-content-length": ["66560"],
        "content-length": ["66824"],
    }


def signed_body(parts: list[bytes], signatures: list[str], trailer: bytes = b"") -> bytes:
    chunks = [b"%x;chunk-signature=%s\r\n%s\r\n" % (len(p), s.encode(), p) for p, s in zip(parts, signatures, strict=True) if p]
    final = b"0;chunk-signature=%s\r\n" % signatures[-1].encode()
    return b"".join(chunks) + final + (trailer or b"\r\n")


def example_body() -> bytes:
    return signed_body([EXAMPLE_DATA[:65536], EXAMPLE_DATA[65536:], b""], CHUNK_SIGNATURES)


def streaming(payload: str, seed: str = SEED) -> Signed:
    return Signed("AKIAIOSFODNN7EXAMPLE", payload, seed, EXAMPLE_KEY, EXAMPLE_DATE, EXAMPLE_SCOPE)


def decode(raw: bytes, headers: dict[str, str], signed: Signed) -> tuple[bytes, Body]:
    async def run() -> tuple[bytes, Body]:
        stream = StreamReader(BaseProtocol(asyncio.get_running_loop()), 2**16, loop=asyncio.get_running_loop())
        stream.feed_data(raw)
        stream.feed_eof()
        body = Body(stream, headers, signed)
        return b"".join([piece async for piece in body.pieces()]), body

    return asyncio.run(run())


SIGNED_STREAM = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": "66560"}


def test_the_aws_example_request_verifies_with_its_published_seed_signature() -> None:
    signed = verify("PUT", "/examplebucket/chunkObject.txt", [], example_headers(), secret_of=lambda _: EXAMPLE_SECRET, now=datetime(2013, 5, 24, tzinfo=UTC))
    assert (signed.signature, signed.payload_sha256) == (SEED, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")


def test_the_aws_example_body_decodes_to_its_66560_bytes_with_every_chunk_signature_verified() -> None:
    data, _ = decode(example_body(), SIGNED_STREAM, streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
    assert data == EXAMPLE_DATA


def test_a_chunk_whose_data_was_changed_is_signature_does_not_match() -> None:
    raw = signed_body([b"b" + EXAMPLE_DATA[1:65536], EXAMPLE_DATA[65536:], b""], CHUNK_SIGNATURES)
    with pytest.raises(SigError) as refused:
        decode(raw, SIGNED_STREAM, streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
    assert refused.value.code == "SignatureDoesNotMatch"


def test_chunks_signed_under_another_seed_signature_are_signature_does_not_match() -> None:
    with pytest.raises(SigError) as refused:
        decode(example_body(), SIGNED_STREAM, streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", seed=TRAILER_SEED))
    assert refused.value.code == "SignatureDoesNotMatch"


def test_a_chunk_without_its_signature_is_signature_does_not_match() -> None:
    raw = example_body().replace(b";chunk-signature=" + CHUNK_SIGNATURES[1].encode(), b"")
    with pytest.raises(SigError) as refused:
        decode(raw, SIGNED_STREAM, streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
    assert refused.value.code == "SignatureDoesNotMatch"


def test_a_body_cut_off_before_its_final_chunk_is_incomplete_body() -> None:
    raw = example_body()
    with pytest.raises(SigError) as refused:
        decode(raw[: raw.index(b"0;chunk-signature=")], SIGNED_STREAM, streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
    assert refused.value.code == "IncompleteBody"


def test_a_body_cut_off_inside_a_chunk_hands_on_no_byte_of_that_chunk() -> None:
    handed: list[bytes] = []

    async def run() -> None:
        stream = StreamReader(BaseProtocol(asyncio.get_running_loop()), 2**16, loop=asyncio.get_running_loop())
        stream.feed_data(example_body()[:1000])
        stream.feed_eof()
        async for piece in Body(stream, SIGNED_STREAM, streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD")).pieces():
            handed.append(piece)

    with pytest.raises(SigError):
        asyncio.run(run())
    assert handed == []


def test_a_decoded_length_other_than_the_declared_one_is_incomplete_body() -> None:
    with pytest.raises(SigError) as refused:
        decode(example_body(), {**SIGNED_STREAM, "x-amz-decoded-content-length": "66561"}, streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
    assert refused.value.code == "IncompleteBody"


TRAILER_HEADERS = {**SIGNED_STREAM, "x-amz-trailer": "x-amz-checksum-crc32c"}


def trailer_body(checksum: bytes = b"sOO8/Q==", signature: str = TRAILER_SIGNATURE) -> bytes:
    trailer = b"x-amz-checksum-crc32c:%s\r\nx-amz-trailer-signature:%s\r\n\r\n" % (checksum, signature.encode())
    return signed_body([EXAMPLE_DATA[:65536], EXAMPLE_DATA[65536:], b""], TRAILER_CHUNK_SIGNATURES, trailer)


def test_the_aws_example_with_a_signed_crc32c_trailer_decodes_and_verifies() -> None:
    data, body = decode(trailer_body(), TRAILER_HEADERS, streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", seed=TRAILER_SEED))
    assert (data, body.checksums) == (EXAMPLE_DATA, {"x-amz-checksum-crc32c": "sOO8/Q=="})


def test_a_signed_trailer_whose_checksum_was_changed_is_signature_does_not_match() -> None:
    with pytest.raises(SigError) as refused:
        decode(trailer_body(checksum=b"AAAAAA=="), TRAILER_HEADERS, streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", seed=TRAILER_SEED))
    assert refused.value.code == "SignatureDoesNotMatch"


def test_a_signed_trailer_whose_checksum_is_not_the_bodys_is_bad_digest() -> None:
    # a trailer signed correctly over a checksum that does not match the data
    previous = TRAILER_CHUNK_SIGNATURES[-1]
    text = hashlib.sha256(b"x-amz-checksum-crc32c:AAAAAA==\n").hexdigest()
    to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", EXAMPLE_DATE, EXAMPLE_SCOPE, previous, text])
    signature = hmac.new(EXAMPLE_KEY, to_sign.encode(), hashlib.sha256).hexdigest()
    with pytest.raises(SigError) as refused:
        decode(
            trailer_body(checksum=b"AAAAAA==", signature=signature), TRAILER_HEADERS, streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", seed=TRAILER_SEED)
        )
    assert refused.value.code == "BadDigest"


def botocore_chunked(data: bytes) -> bytes:
    """The body botocore sends for an upload with a trailing CRC32 (what boto3 does over HTTPS)."""
    return AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32", chunk_size=4096).read()


UNSIGNED_TRAILER = Signed("AKIAIOSFODNN7EXAMPLE", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
CRC32_TRAILER = {"content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": "10000"}


def test_botocores_aws_chunked_body_with_a_crc32_trailer_decodes_and_verifies() -> None:
    data = bytes(range(256)) * 39 + b"0123456789abcdef"
    assert decode(botocore_chunked(data), CRC32_TRAILER, UNSIGNED_TRAILER)[0] == data


def test_an_unsigned_trailer_whose_crc32_is_not_the_bodys_is_bad_digest() -> None:
    raw = botocore_chunked(b"x" * 10000)
    crc = base64.b64encode(zlib.crc32(b"x" * 10000).to_bytes(4, "big"))
    with pytest.raises(SigError) as refused:
        decode(raw.replace(crc, base64.b64encode(b"\0\0\0\0")), CRC32_TRAILER, UNSIGNED_TRAILER)
    assert refused.value.code == "BadDigest"


def test_an_announced_trailer_that_never_comes_is_incomplete_body() -> None:
    raw = b"5\r\nhello\r\n0\r\n\r\n"
    with pytest.raises(SigError) as refused:
        decode(raw, {"content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32"}, UNSIGNED_TRAILER)
    assert refused.value.code == "IncompleteBody"


def test_a_plain_body_whose_sha256_header_does_not_match_is_bad_digest() -> None:
    with pytest.raises(SigError) as refused:
        decode(b"hello", {"x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(b"other").digest()).decode()}, Signed("k", UNSIGNED))
    assert refused.value.code == "BadDigest"


def test_a_plain_body_whose_crc32c_header_matches_is_taken_and_echoed() -> None:
    crc = "mnG7TA=="  # CRC32C of b"hello"
    assert decode(b"hello", {"x-amz-checksum-crc32c": crc}, Signed("k", hashlib.sha256(b"hello").hexdigest()))[1].checksums == {"x-amz-checksum-crc32c": crc}


def test_a_checksum_algorithm_the_gateway_does_not_verify_is_refused_before_the_body_is_read() -> None:
    with pytest.raises(SigError) as refused:
        decode(b"", {"x-amz-checksum-md4": "x"}, Signed("k", EMPTY_SHA256))
    assert refused.value.code == "InvalidRequest"
