"""Residency tags: what the gateway signs when it writes a record, and checks on every read.

A tag binds region, jurisdiction, subject, key, category, content SHA-256,
size and write time, signed with the region's Ed25519 tag key. Its wire form
is ``<base64url(canonical JSON claims)>.<base64url(signature)>``: short,
ASCII, and fits S3 user metadata.

Verification is a numbered procedure; each failure has its own reason code
and is a residency violation: the record is never served.
"""

from __future__ import annotations

import binascii
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.canonical import b64url, b64url_decode, canonical
from gateway.model import ResidencyTag

TAG_FIELDS = ("v", "region", "jurisdiction", "subject", "key", "category", "sha256", "size", "written_at")


class TagViolation(Exception):
    """A tag that does not prove where its record belongs. ``code`` is stable."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class TagSigner:
    keys: Mapping[str, ed25519.Ed25519PrivateKey]  # region id -> tag key

    def sign(self, tag: ResidencyTag) -> str:
        key = self.keys[tag.region]
        payload = canonical(tag.claims())
        return f"{b64url(payload)}.{b64url(key.sign(payload))}"


CACHE_ENTRIES = 8192  # verified tags remembered (about 1 KiB each)


@dataclass(frozen=True)
class TagVerifier:
    """Checks tags; remembers the tags whose signature it has already verified.

    Steps (2) to (4) depend only on the tag's wire form and the configured keys,
    so a tag that passed them once is remembered by its exact bytes and not
    decoded or verified again; steps (1) and (5) to (7), which bind the tag to
    the object it was found with, run on every read. The memory is bounded
    (oldest first out) and belongs to this verifier, so new keys start empty.
    """

    keys: Mapping[str, ed25519.Ed25519PublicKey]  # region id -> tag public key
    jurisdictions: Mapping[str, str]  # region id -> jurisdiction code
    cache_entries: int = CACHE_ENTRIES
    _verified: dict[str, ResidencyTag] = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def verify(
        self,
        blob: str | None,
        *,
        store_region: str,
        subject: str,
        key: str,
        sha256: str | None,
        size: int | None,
    ) -> ResidencyTag:
        """Check a tag against the object it was found with.

        (1) a tag is present; (2) it decodes to the expected claims; (3) it names
        a configured region and that region's jurisdiction; (4) the signature
        verifies under that region's tag key; (5) the region is the store the
        object was found in (a copied or misplaced object fails here); (6) it is
        bound to this subject and key; (7) the content hash and size match the
        body (skipped when only metadata is read: ``sha256=None``).
        """
        # (1)
        if not blob:
            raise TagViolation("tag-missing", f"object `{key}` in `{store_region}` has no residency tag")
        tag = self._verified.get(blob)
        if tag is None:
            tag = self._decode_and_verify(blob, key)  # may run in worker threads: the signature check releases the GIL
            if self.cache_entries > 0:
                with self._lock:
                    while len(self._verified) >= self.cache_entries:
                        del self._verified[next(iter(self._verified))]
                    self._verified[blob] = tag
        # (5)
        if tag.region != store_region:
            raise TagViolation("tag-region-mismatch", f"object `{key}` tagged for `{tag.region}` was found in the store of `{store_region}`")
        # (6)
        if tag.subject != subject or tag.key != key:
            raise TagViolation("tag-binding-mismatch", f"residency tag of `{key}` belongs to another object")
        # (7)
        if sha256 is not None and (tag.sha256 != sha256 or tag.size != size):
            raise TagViolation("tag-content-mismatch", f"content of `{key}` does not match its residency tag")
        return tag

    def _decode_and_verify(self, blob: str, key: str) -> ResidencyTag:
        """Steps (2) to (4): the tag decodes, names a configured region and is signed by its key."""
        # (2)
        try:
            payload_text, signature_text = blob.split(".")
            payload = b64url_decode(payload_text)
            signature = b64url_decode(signature_text)
            claims = json.loads(payload)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise TagViolation("tag-malformed", f"residency tag of `{key}` cannot be decoded") from None
        if not isinstance(claims, dict) or set(claims) != set(TAG_FIELDS) or claims.get("v") != 1:
            raise TagViolation("tag-malformed", f"residency tag of `{key}` does not have the expected claims")
        if canonical(claims) != payload:
            raise TagViolation("tag-malformed", f"residency tag of `{key}` is not canonical")
        try:
            tag = ResidencyTag(**{name: claims[name] for name in TAG_FIELDS if name != "v"})
        except TypeError:
            raise TagViolation("tag-malformed", f"residency tag of `{key}` has claims of the wrong type") from None
        # (3)
        public_key = self.keys.get(tag.region)
        if public_key is None:
            raise TagViolation("tag-unknown-region", f"residency tag of `{key}` names unknown region `{tag.region}`")
        if self.jurisdictions.get(tag.region) != tag.jurisdiction:
            raise TagViolation("tag-jurisdiction-mismatch", f"residency tag of `{key}` names jurisdiction `{tag.jurisdiction}` for `{tag.region}`")
        # (4)
        try:
            public_key.verify(signature, payload)
        except InvalidSignature:
            raise TagViolation("tag-signature-invalid", f"residency tag of `{key}` is not signed by the tag key of `{tag.region}`") from None
        return tag
