"""Encryption at rest for the provider keys gateway keys hold.

The master key comes from `UNIMODEL_SECRET_KEY` (a Fernet key is used as is; any other string is a passphrase,
stretched with scrypt), else from `secret.key` in the data folder, generated on first need. Several processes may
start at once: the file is written completely under a temporary name, then linked into place, which fails if
another process got there first — so nobody ever reads a half-written key; the loser reads the winner's key.
A key file that other users can read is refused rather than used.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from .types import StoreError

ENV_VAR = "UNIMODEL_SECRET_KEY"
KEY_FILE = "secret.key"
_SALT = b"unimodel secret key v1"  # fixed: the passphrase is the only secret; the salt just separates it from others


class SecretBox:
    """Encrypts and decrypts provider keys with the master key. Never puts a plaintext or ciphertext in a message."""

    def __init__(self, fernet: Fernet, source: str) -> None:
        self._fernet = fernet
        self.source = source  # where the key came from, for messages: "UNIMODEL_SECRET_KEY" or the file path

    @classmethod
    def load(cls, data_dir: str | Path) -> SecretBox:
        """The master key from the environment, else from (or newly into) `data_dir/secret.key`."""
        passphrase = os.environ.get(ENV_VAR)
        if passphrase:
            return cls(Fernet(fernet_key(passphrase)), ENV_VAR)
        path = Path(data_dir).expanduser() / KEY_FILE
        return cls(Fernet(fernet_key(_read_or_create(path))), str(path))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as e:
            raise StoreError(
                f"cannot decrypt the stored provider keys: the secret key ({self.source}) changed since they were "
                f"stored — restore the original {ENV_VAR} or secret.key, or store the provider keys again"
            ) from e


@functools.lru_cache(maxsize=8)
def fernet_key(secret: str) -> bytes:
    """A Fernet key from `secret`: itself if it is one (44 url-safe base64 chars of 32 bytes), else scrypt of it."""
    candidate = secret.strip().encode()
    with contextlib.suppress(binascii.Error, ValueError):
        if len(candidate) == 44 and len(base64.urlsafe_b64decode(candidate)) == 32:
            return candidate
    derived = hashlib.scrypt(secret.encode(), salt=_SALT, n=2**14, r=8, p=1, dklen=32)
    return base64.urlsafe_b64encode(derived)


def _read_or_create(path: Path) -> str:
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    try:
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".secret.key.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another process linked its key first: use that one
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    except OSError as e:
        raise StoreError(f"cannot create the secret key file {path}: {e.strerror or e} — check [store] data_dir") from e
    return _read(path)


def _read(path: Path) -> str:
    """The key in `path`, refusing a file other users can read; FileNotFoundError when there is none yet."""
    try:
        with open(path, "rb") as f:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            if mode & 0o077:
                raise StoreError(
                    f"the secret key file {path} is readable by other users (mode {mode:04o}); "
                    f"run `chmod 600 {path}` (or set {ENV_VAR})"
                )
            key = f.read().decode().strip()
    except FileNotFoundError:
        raise
    except UnicodeError as e:
        raise StoreError(f"the secret key file {path} is not text; restore it (or set {ENV_VAR})") from e
    except OSError as e:
        raise StoreError(f"cannot read the secret key file {path}: {e.strerror or e}") from e
    if not key:
        raise StoreError(f"the secret key file {path} is empty; restore it (or set {ENV_VAR})")
    return key
