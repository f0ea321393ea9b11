"""Key files: generate, load and resolve them under the data directory.

Private keys are PKCS#8 PEM written with mode 0600; public keys are
SubjectPublicKeyInfo PEM. Loading names the file and what is wrong with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gateway.errors import KeyFileError

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def resolve(data_dir: Path, path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else data_dir / candidate


def public_path_for(private_path: Path) -> Path:
    """``keys/tags/x.key`` -> ``keys/tags/x.pub``."""
    return private_path.with_suffix(".pub")


def write_private_key(path: Path, key: PrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def write_public_key(path: Path, key: PublicKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path.write_bytes(pem)


def generate_ed25519_pair(private_path: Path, public_path: Path | None = None) -> bool:
    """Create a key pair unless the private key exists; True if one was made."""
    public_path = public_path or public_path_for(private_path)
    if private_path.exists():
        if not public_path.exists():
            write_public_key(public_path, load_private_key(private_path).public_key())
        return False
    key = ed25519.Ed25519PrivateKey.generate()
    write_private_key(private_path, key)
    write_public_key(public_path, key.public_key())
    return True


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{what} `{path}` does not exist; run `gateway keys init`") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} `{path}`: {exc.strerror}") from exc


def load_private_key(path: Path) -> PrivateKey:
    data = _read(path, "private key file")
    if b"PUBLIC KEY" in data and b"PRIVATE KEY" not in data:
        raise KeyFileError(f"`{path}` holds a public key; a private key file is needed here")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"`{path}` is not an unencrypted PEM private key") from exc
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise KeyFileError(f"`{path}` must be an Ed25519 or P-256 key")


def load_public_key(path: Path) -> PublicKey:
    data = _read(path, "public key file")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"`{path}` is not a PEM public key") from exc
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise KeyFileError(f"`{path}` must be an Ed25519 or P-256 key")


def load_ed25519_private(path: Path) -> ed25519.Ed25519PrivateKey:
    key = load_private_key(path)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"`{path}` must be an Ed25519 key")
    return key


def load_ed25519_public(path: Path) -> ed25519.Ed25519PublicKey:
    key = load_public_key(path)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise KeyFileError(f"`{path}` must be an Ed25519 key")
    return key


@dataclass(frozen=True)
class KeyPlan:
    """Which key files a configuration needs under a data directory."""

    pairs: tuple[tuple[str, Path], ...]  # (purpose, private key path)


def plan_keys(token_private: str, provider: str, tag_keys: dict[str, str], data_dir: Path, *, federation: str | None = None) -> KeyPlan:
    """Every key pair a configuration needs; ``federation`` is the key that signs this gateway's requests to its peers."""
    pairs = [("service tokens", resolve(data_dir, token_private)), ("provider signatures", resolve(data_dir, provider))]
    pairs += [(f"residency tags of `{region}`", resolve(data_dir, path)) for region, path in sorted(tag_keys.items())]
    if federation is not None:
        pairs.append(("requests to peer gateways", resolve(data_dir, federation)))
    return KeyPlan(tuple(pairs))
