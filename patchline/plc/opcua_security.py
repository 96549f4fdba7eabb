"""Who may open a session on the station's OPC UA server, and over what channel.

Without options the server is as before: anonymous sessions on a plain channel, for a plant network
that is closed anyway. With the server's certificate and private key (`--opcua-cert`, `--opcua-key`)
it offers Basic256Sha256 only, signed or signed and encrypted: nothing crosses the network in clear.
With a users file (`--opcua-users`, the dashboard's format: PBKDF2 hashes, written by `patchline
dashboard --auth-file FILE --add-user NAME`) only those users may log in, and anonymous sessions are
refused; a users file without a certificate is refused, because the password would cross in clear.
With a trust folder (`--opcua-trust`) only clients whose certificate lies in it may connect.
Every file is checked when the run starts, with a sentence naming the option; `make_certificate`
writes a self-signed server certificate (`patchline opcua-cert`).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from patchline.errors import ConfigError

log = logging.getLogger(__name__)

APPLICATION_URI = "urn:patchline:station"  # the server's; its certificate must name it
MAX_FILE_BYTES = 64 * 1024


def _read(path: Path, option: str) -> bytes:
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{option} {path} is not a regular file of at most {MAX_FILE_BYTES} bytes.")
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{option} {path} cannot be read: {exc.strerror or exc}.") from None


def load_certificate(path: Path, option: str = "--opcua-cert"):
    """The x509 certificate in a DER or PEM file; ConfigError naming `option` otherwise."""
    from cryptography import x509

    data = _read(Path(path), option)
    try:
        return x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----") else \
            x509.load_der_x509_certificate(data)
    except ValueError:
        raise ConfigError(f"{option} {path} is not an X.509 certificate (DER or PEM).") from None


def _load_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    data = _read(Path(path), "--opcua-key")
    try:
        if data.lstrip().startswith(b"-----"):
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"--opcua-key {path} is not an unencrypted private key (PEM or DER).") from None


@dataclass(frozen=True)
class OpcUaSecurity:
    """The OPC UA server's certificate and key, users file and trusted-clients folder (each optional)."""

    cert: Path | None = None
    key: Path | None = None
    users: Path | None = None
    trust: Path | None = None

    @property
    def secure(self) -> bool:
        return self.cert is not None

    def check(self) -> "OpcUaSecurity":
        """self when the options fit together and every file is sound; ConfigError, one sentence, otherwise."""
        from cryptography.hazmat.primitives import serialization

        if (self.cert is None) != (self.key is None):
            raise ConfigError("--opcua-cert and --opcua-key go together: the server's certificate and its private key.")
        if not self.secure and (self.users is not None or self.trust is not None):
            given = "--opcua-users" if self.users is not None else "--opcua-trust"
            raise ConfigError(f"{given} needs --opcua-cert and --opcua-key: without them passwords and sessions "
                              f"would cross the network in clear (make a certificate with `patchline opcua-cert`).")
        if self.secure:
            public = load_certificate(self.cert).public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            mine = _load_key(self.key).public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            if public != mine:
                raise ConfigError(f"--opcua-key {self.key} is not the private key of --opcua-cert {self.cert}.")
        if self.users is not None:
            from patchline.dashboard.auth import load_auth_file

            try:
                load_auth_file(self.users)
            except ConfigError as exc:
                raise ConfigError(str(exc).replace("--auth-file", "--opcua-users", 1)) from None
        if self.trust is not None:
            certificates = trusted_certificates(self.trust)
            if not certificates:
                raise ConfigError(f"--opcua-trust {self.trust} holds no client certificate (.der or .pem).")
        return self

    def user_manager(self):
        """asyncua's user manager for the run: the users file's users (role User), or None (anonymous)."""
        if self.users is None:
            return None
        from patchline.dashboard.auth import BasicAuth, load_auth_file

        return FileUsers(BasicAuth(load_auth_file(self.users)))

    async def apply(self, server) -> None:
        """Set the asyncua server's certificate, policies, identity tokens and client check (before start)."""
        from asyncua import ua

        if not self.secure:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            server.set_identity_tokens([ua.AnonymousIdentityToken])
            return
        await server.set_application_uri(APPLICATION_URI)
        await server.load_certificate(str(self.cert))
        await server.load_private_key(str(self.key))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                                    ua.SecurityPolicyType.Basic256Sha256_Sign])
        server.set_identity_tokens([ua.UserNameIdentityToken] if self.users is not None else [ua.AnonymousIdentityToken])
        if self.trust is not None:
            server.set_certificate_validator(TrustedClients(trusted_certificates(self.trust)).validate)


class FileUsers:
    """asyncua user manager: a user of the users file with its password, as a plain user (never admin).

    asyncua asks on the server's loop, and a password check costs PBKDF2 (~0.1 s), so after a wrong
    password a user's next attempt within RETRY_S is refused unchecked: guessing cannot stall the
    server for the clients it serves."""

    RETRY_S = 1.0

    def __init__(self, auth, clock=time.monotonic):
        self.auth, self.clock = auth, clock
        self._failed: dict[str, float] = {}  # user → when its last wrong password came

    def get_user(self, iserver, username=None, password=None, certificate=None):
        from asyncua.crypto.permission_rules import User, UserRole

        if not isinstance(username, str) or password is None:
            return None
        user, now = username[:64], self.clock()
        if now - self._failed.get(user, -1e9) < self.RETRY_S:
            log.warning("OPC UA login refused for user %r: retried within %g s of a wrong password", user,
                        self.RETRY_S)
            return None
        text = password.decode("utf-8", "replace") if isinstance(password, bytes) else str(password)
        if self.auth.checks(user, text):
            return User(role=UserRole.User, name=user)
        if user in self.auth.users and len(self._failed) < 10_000:
            self._failed[user] = now
        log.warning("OPC UA login refused for user %r (unknown user or wrong password)", user)
        return None


def trusted_certificates(folder: Path) -> list[bytes]:
    """DER bytes of every certificate (*.der, *.pem, *.crt) in `folder`; ConfigError for an unreadable one."""
    from cryptography.hazmat.primitives import serialization

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--opcua-trust {folder} is not a folder.")
    return [load_certificate(p, "--opcua-trust").public_bytes(serialization.Encoding.DER)
            for p in sorted(folder.iterdir())[:1000] if p.suffix.lower() in (".der", ".pem", ".crt")]


class TrustedClients:
    """Refuses a client whose certificate is not one of the trusted ones (exact DER match)."""

    def __init__(self, certificates: list[bytes]):
        self.certificates = set(certificates)

    async def validate(self, cert, app_description) -> None:
        from asyncua import ua
        from cryptography.hazmat.primitives import serialization

        if cert.public_bytes(serialization.Encoding.DER) not in self.certificates:
            raise ua.uaerrors.BadCertificateUntrusted()


def make_certificate(out: Path, host: str, days: int = 730) -> tuple[Path, Path]:
    """A self-signed server certificate for APPLICATION_URI and `host` (a name or an address), RSA 2048:
    writes out/server-cert.der and out/server-key.pem (0600) and returns their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    try:
        where = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        where = x509.DNSName(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "patchline station")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(APPLICATION_URI), where]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                                         data_encipherment=True, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = out / "server-cert.der", out / "server-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.touch(mode=0o600, exist_ok=True)
    key_path.chmod(0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path
