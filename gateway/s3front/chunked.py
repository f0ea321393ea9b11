"""Request bodies as S3 clients send them: whole, or ``aws-chunked``, with the checks S3 makes on each.

A body is read piece by piece (``Body.pieces``), so an upload of any size is
held in memory one piece at a time. Checks, in order:

(1) ``aws-chunked`` framing (``Content-Encoding: aws-chunked``, or an
    ``x-amz-content-sha256`` of a ``STREAMING-`` form): each chunk is
    ``HEX-SIZE[;chunk-signature=SIG]\\r\\nDATA\\r\\n``, ending with a chunk of
    size 0, then (the ``-TRAILER`` forms) trailing headers and a blank line.
(2) ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``: every chunk's signature
    is an HMAC under the request's signing key of
    ``AWS4-HMAC-SHA256-PAYLOAD``, the request time, the scope, the previous
    signature (the request's own signature for the first chunk), the SHA-256 of
    the empty string and the SHA-256 of the chunk's data, so chunks can be
    neither changed, dropped, reordered nor cut off before the final chunk;
    a chunk is handed on only after its signature verified. The trailing
    headers are signed by ``x-amz-trailer-signature`` the same way
    (``AWS4-HMAC-SHA256-TRAILER``, the previous signature and the SHA-256 of
    the trailing header lines, each ``name:value\\n``).
(3) After the last piece: the decoded length is ``x-amz-decoded-content-length``;
    the body's SHA-256 is the signed ``x-amz-content-sha256`` (when it is a
    hash), its MD5 the ``Content-MD5`` and its checksum the
    ``x-amz-checksum-ALGORITHM`` header or trailer (crc32, crc32c, sha1,
    sha256), whichever were sent.

A failure raises ``SigError`` with the S3 error code a client understands. A
caller that stores pieces as they come must not make them visible before the
last piece was handed on: only then has every check passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import crc32c

from gateway.s3front.sigv4 import EMPTY_SHA256, SigError, Signed

STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_FORMS = (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
MAX_CHUNK = 16 * 1024 * 1024  # the largest aws-chunked chunk taken (clients send 8 KiB to 1 MiB)
MAX_LINE = 4096  # a chunk header or trailing header line
PIECE = 1024 * 1024  # how much of a plain body is read at a time
CHECKSUM_HEADER = "x-amz-checksum-"


class Reader(Protocol):
    """What ``Body`` reads from: an ``aiohttp.StreamReader`` (the request's ``content``)."""

    async def readexactly(self, n: int) -> bytes: ...

    async def readuntil(self, separator: bytes = ...) -> bytes: ...

    async def read(self, n: int = ...) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


class _Crc32c(_Crc32):
    def update(self, data: bytes) -> None:
        self.value = crc32c.crc32c(data, self.value)


CHECKSUMS = {"crc32": _Crc32, "crc32c": _Crc32c, "sha1": hashlib.sha1, "sha256": hashlib.sha256}


def chunk_string_to_sign(amz_date: str, scope: str, previous: str, data_sha256: str) -> str:
    return "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY_SHA256, data_sha256])


def trailer_string_to_sign(amz_date: str, scope: str, previous: str, trailer_sha256: str) -> str:
    return "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous, trailer_sha256])


def _sign(signed: Signed, text: str) -> str:
    return hmac.new(signed.signing_key, text.encode(), hashlib.sha256).hexdigest()


def _forged(what: str) -> SigError:
    return SigError("SignatureDoesNotMatch", f"the {what} signature we calculated does not match the one you provided")


def _incomplete(detail: str) -> SigError:
    return SigError("IncompleteBody", f"the aws-chunked body is malformed or cut short: {detail}", 400)


def is_chunked(headers: Mapping[str, str], signed: Signed) -> bool:
    encodings = [e.strip().lower() for e in headers.get("content-encoding", "").split(",")]
    return signed.payload_sha256 in STREAMING_FORMS or "aws-chunked" in encodings


class Body:
    """A request body and its checks; iterate ``pieces()`` once, then read ``size`` and ``checksums``.

    ``headers`` maps lower-case names to values.
    """

    def __init__(self, stream: Reader, headers: Mapping[str, str], signed: Signed) -> None:
        payload = signed.payload_sha256
        if payload.startswith("STREAMING-") and payload not in STREAMING_FORMS:
            raise SigError("InvalidArgument", f"x-amz-content-sha256 `{payload}` is not a payload form S3 knows", 400)
        self.stream, self.headers, self.signed = stream, headers, signed
        self.chunked = is_chunked(headers, signed)
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False) if "content-md5" in headers else None
        self._sha256 = hashlib.sha256() if len(payload) == 64 else None
        self._trailer = headers.get("x-amz-trailer", "").strip().lower() or None
        if self._trailer is not None and (not self._trailer.startswith(CHECKSUM_HEADER) or self._trailer[len(CHECKSUM_HEADER) :] not in CHECKSUMS):
            raise SigError("InvalidRequest", f"the trailer `{self._trailer}` is not a checksum this gateway verifies (crc32, crc32c, sha1, sha256)", 400)
        named = [name for name in headers if name.startswith(CHECKSUM_HEADER) and name != "x-amz-checksum-type"]
        if self._trailer is not None:
            named.append(self._trailer)
        self._checksums = {}
        for name in named:
            algorithm = name[len(CHECKSUM_HEADER) :]
            if algorithm not in CHECKSUMS:
                raise SigError("InvalidRequest", f"`{name}` is not a checksum this gateway verifies (crc32, crc32c, sha1, sha256)", 400)
            self._checksums[name] = CHECKSUMS[algorithm]()
        if len(self._checksums) > 1:
            raise SigError("InvalidRequest", "send at most one x-amz-checksum-* header or trailer", 400)
        self.checksums: dict[str, str] = {}  # header name -> base64 value, verified: what the response echoes
        self._trailing_value: str | None = None

    async def pieces(self) -> AsyncIterator[bytes]:
        source = self._decoded() if self.chunked else self._plain()
        async for piece in source:
            self.size += len(piece)
            if self._md5 is not None:
                self._md5.update(piece)
            if self._sha256 is not None:
                self._sha256.update(piece)
            for checksum in self._checksums.values():
                checksum.update(piece)
            if piece:
                yield piece
        self._check_whole()

    async def _plain(self) -> AsyncIterator[bytes]:
        while piece := await self.stream.read(PIECE):
            yield piece

    async def _line(self) -> str:
        try:
            raw = await self.stream.readuntil(b"\r\n")
        except ValueError:
            raise _incomplete("a chunk header line is too long") from None
        if not raw.endswith(b"\r\n"):
            raise _incomplete("the body ends inside a chunk header")
        if len(raw) > MAX_LINE:
            raise _incomplete("a chunk header line is too long")
        try:
            return raw[:-2].decode("ascii")
        except UnicodeDecodeError:
            raise _incomplete("a chunk header is not ASCII") from None

    async def _exactly(self, n: int) -> bytes:
        try:
            return await self.stream.readexactly(n)
        except EOFError:  # asyncio.IncompleteReadError
            raise _incomplete("the body ends inside a chunk") from None

    async def _decoded(self) -> AsyncIterator[bytes]:
        # (1) and (2)
        signed_chunks = self.signed.payload_sha256 in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
        previous = self.signed.signature
        while True:
            size_text, _, extension = (await self._line()).partition(";")
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _incomplete(f"`{size_text[:20]}` is not a chunk size") from None
            if not 0 <= size <= MAX_CHUNK:
                raise _incomplete(f"a chunk of {size} bytes is larger than {MAX_CHUNK}")
            data = await self._exactly(size) if size else b""
            if signed_chunks:
                name, _, signature = extension.partition("=")
                if name != "chunk-signature" or not signature:
                    raise SigError("SignatureDoesNotMatch", "a chunk of a signed aws-chunked body has no chunk-signature")
                expected = _sign(self.signed, chunk_string_to_sign(self.signed.amz_date, self.signed.scope, previous, hashlib.sha256(data).hexdigest()))
                if not hmac.compare_digest(expected, signature):
                    raise _forged("chunk")
                previous = signature
            if size == 0:
                break
            if await self._exactly(2) != b"\r\n":
                raise _incomplete("a chunk's data does not end with CRLF")
            yield data
        trailers: list[tuple[str, str]] = []
        while line := await self._line():
            name, colon, value = line.partition(":")
            if not colon:
                raise _incomplete("a trailing header has no `:`")
            trailers.append((name.strip().lower(), value.strip()))
        values = dict(trailers)
        if self.signed.payload_sha256 == STREAMING_SIGNED_TRAILER:
            signature = values.pop("x-amz-trailer-signature", "")
            text = "".join(f"{name}:{value}\n" for name, value in trailers if name != "x-amz-trailer-signature")
            expected = _sign(self.signed, trailer_string_to_sign(self.signed.amz_date, self.signed.scope, previous, hashlib.sha256(text.encode()).hexdigest()))
            if not hmac.compare_digest(expected, signature):
                raise _forged("trailer")
        if set(values) - {self._trailer}:
            raise SigError("InvalidRequest", "the body carries trailing headers that x-amz-trailer did not announce", 400)
        if self._trailer is not None:
            if self._trailer not in values:
                raise _incomplete(f"the announced trailer `{self._trailer}` is missing")
            self._trailing_value = values[self._trailer]

    def _check_whole(self) -> None:
        # (3)
        declared = self.headers.get("x-amz-decoded-content-length")
        if self.chunked and declared is not None and declared != str(self.size):
            raise _incomplete(f"it decodes to {self.size} bytes, not the {declared} of x-amz-decoded-content-length")
        if self._sha256 is not None and self._sha256.hexdigest() != self.signed.payload_sha256:
            raise SigError("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.", 400)
        md5 = self.headers.get("content-md5")
        if md5 is not None and self._md5 is not None and md5 != base64.b64encode(self._md5.digest()).decode():
            raise SigError("BadDigest", "The Content-MD5 you specified did not match what we received.", 400)
        for name, checksum in self._checksums.items():
            sent = self._trailing_value if name == self._trailer else self.headers[name]
            computed = base64.b64encode(checksum.digest()).decode()
            if sent != computed:
                raise SigError("BadDigest", f"The {name[len(CHECKSUM_HEADER) :].upper()} you specified did not match the calculated checksum.", 400)
            self.checksums[name] = computed
