"""Residency tags: what the gateway signs when it writes a record, and checks on every read.

A tag binds region, jurisdiction, subject, key, category, content SHA-256,
size and write time, signed with the region's Ed25519 tag key. Its wire form
is ``<base64url(canonical JSON claims)>.<base64url(signature)>``: short,
ASCII, and fits S3 user metadata.

Verification is a numbered procedure; each failure has its own reason code
and is a residency violation: the record is never served.

Beside the tag the gateway keeps a **seal**: an HMAC-SHA256 of the tag's exact
text under a key derived (HKDF) from the same region's tag key, so only a
holder of that signing key can make one. A valid seal stands in for the
Ed25519 check of step (4), about 4 µs against 170-250 µs on a small CPU, which
is what lets an order naming thousands of records be decided in seconds. It
is a private shortcut of the process that signs: the tag stays signed for
everyone else (packages carry it, auditors verify it with the public key), a
verifier without the signing key ignores seals, and a missing or wrong seal
(a rotated key, a record written before seals) only means the signature is
checked as before. Every other step runs either way, except the check in (2)
that the claims are in canonical form: sealed text is this gateway's own
canonical output.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.canonical import b64url, b64url_decode, canonical
from gateway.model import ResidencyTag

TAG_FIELDS = ("v", "region", "jurisdiction", "subject", "key", "category", "sha256", "size", "written_at")
_TAG_FIELD_SET = frozenset(TAG_FIELDS)
SEAL_VERSION = "s1"
_SEAL_INFO = b"disclosure-gateway residency tag seal v1"


class TagViolation(Exception):
    """A tag that does not prove where its record belongs. ``code`` is stable."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def seal_key(tag_key: ed25519.Ed25519PrivateKey) -> bytes:
    """The HMAC key of a region's seals, derived from its tag signing key (one way: it does not reveal the tag key)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(tag_key.private_bytes_raw())


def make_seal(key: bytes, blob: str) -> str:
    """``s1.<base64url(HMAC-SHA256(key, blob))>``."""
    return f"{SEAL_VERSION}.{b64url(hmac.digest(key, blob.encode('ascii'), 'sha256'))}"  # by name: OpenSSL's one-shot HMAC


@dataclass(frozen=True)
class TagSigner:
    keys: Mapping[str, ed25519.Ed25519PrivateKey]  # region id -> tag key
    seal_keys: Mapping[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seal_keys", {region: seal_key(key) for region, key in self.keys.items()})

    def sign(self, tag: ResidencyTag) -> str:
        key = self.keys[tag.region]
        payload = canonical(tag.claims())
        return f"{b64url(payload)}.{b64url(key.sign(payload))}"

    def seal(self, region: str, blob: str) -> str:
        """The seal of a tag this signer made for ``region`` (see the module docstring)."""
        return make_seal(self.seal_keys[region], blob)


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
    seal_keys: Mapping[str, bytes] = field(default_factory=dict)  # region id -> seal key (TagSigner.seal_keys); empty: seals ignored
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
        seal: str | None = None,
    ) -> ResidencyTag:
        """Check a tag against the object it was found with.

        (1) a tag is present; (2) it decodes to the expected claims; (3) it names
        a configured region and that region's jurisdiction; (4) the signature
        verifies under that region's tag key; (5) the region is the store the
        object was found in (a copied or misplaced object fails here); (6) it is
        bound to this subject and key; (7) the content hash and size match the
        body (skipped when only metadata is read: ``sha256=None``). ``seal``,
        when valid under the region's seal key, stands in for (4).
        """
        # (1)
        if not blob:
            raise TagViolation("tag-missing", f"object `{key}` in `{store_region}` has no residency tag")
        tag = self._verified.get(blob)
        if tag is None:
            # may run in worker threads: the signature check releases the GIL
            tag = self._remember(blob, self._decode_and_verify(blob, key, sealed=self._sealed(store_region, blob, seal)))
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

    def is_quick(self, blob: str | None, seal: str | None, store_region: str) -> bool:
        """True if ``verify`` of this tag, found in ``store_region``, needs no signature check.

        That is when the tag is missing (it fails at once), remembered, or carries
        a valid seal: cheap enough to check on the event loop, where a signature
        check is worth a hand-off to a worker thread. A sealed tag is decoded and
        remembered here, so the ``verify`` that follows does not compute its seal
        again (a third of a sealed tag's check: 1,000 subjects x 10 records,
        bench/README.md "The order at scale").
        """
        if not blob or blob in self._verified:
            return True
        if not self._sealed(store_region, blob, seal):
            return False
        with contextlib.suppress(TagViolation):  # ``verify`` finds it again and raises it
            self._remember(blob, self._decode_and_verify(blob, "", sealed=True))
        return True

    def _remember(self, blob: str, tag: ResidencyTag) -> ResidencyTag:
        if self.cache_entries > 0:
            with self._lock:
                while len(self._verified) >= self.cache_entries:
                    del self._verified[next(iter(self._verified))]
                self._verified[blob] = tag
        return tag

    def _sealed(self, region: str, blob: str, seal: object) -> bool:
        """Whether ``seal`` is this gateway's seal of ``blob`` under the seal key of ``region``, the store it was
        found in: this gateway seals a tag only under its own region's key, so a valid one also vouches that
        the tag names that region (step (5) still checks it)."""
        key = self.seal_keys.get(region)
        return (
            key is not None
            and type(seal) is str
            and seal.isascii()
            and type(blob) is str
            and blob.isascii()  # a tag is ASCII; anything else is for the full check to refuse
            and hmac.compare_digest(seal, make_seal(key, blob))
        )

    def _decode_and_verify(self, blob: str, key: str, *, sealed: bool) -> ResidencyTag:
        """Steps (2) to (4): the tag decodes, names a configured region and is signed by its key, or ``sealed``:
        it carries this gateway's valid seal (``_sealed``), which proves the holder of the region's signing key
        made or checked this exact text."""
        # (2)
        try:
            payload_text, signature_text = blob.split(".")
            payload = b64url_decode(payload_text)
            claims = json.loads(payload.decode("utf-8"))  # decoded here: json.loads of bytes guesses their encoding first
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            raise TagViolation("tag-malformed", f"residency tag of `{key}` cannot be decoded") from None
        if not isinstance(claims, dict) or claims.keys() != _TAG_FIELD_SET or claims.get("v") != 1:
            raise TagViolation("tag-malformed", f"residency tag of `{key}` does not have the expected claims")
        if not sealed and canonical(claims) != payload:  # sealed text is canonical: this gateway wrote it
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
        if sealed:
            return tag
        try:
            signature = b64url_decode(signature_text)  # decoded only here: a sealed tag's is not needed
        except ValueError:
            raise TagViolation("tag-malformed", f"residency tag of `{key}` cannot be decoded") from None
        try:
            public_key.verify(signature, payload)
        except InvalidSignature:
            raise TagViolation("tag-signature-invalid", f"residency tag of `{key}` is not signed by the tag key of `{tag.region}`") from None
        return tag
