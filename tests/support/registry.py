"""A real OCI registry for tests: Debian's docker-registry on loopback, optionally with TLS and htpasswd."""

from __future__ import annotations

import base64
import datetime
import json
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.processes import free_port


def registry_binary() -> str:
    found = shutil.which("docker-registry") or shutil.which("registry")
    assert found, "docker-registry is installed by .ci/setup"
    return found


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "registry.pem", directory / "registry-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class Registry:
    directory: Path
    tls: bool = False
    username: str | None = None
    password: str | None = None
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}" if not self.tls else f"localhost:{self.port}"

    @property
    def certificate(self) -> Path | None:
        return self.directory / "registry.pem" if self.tls else None

    @property
    def storage(self) -> Path:
        return self.directory / "storage"

    def auth_file(self) -> Path:
        """A docker config.json with this registry's credentials."""
        path = self.directory / "config.json"
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        path.write_text(json.dumps({"auths": {self.host: {"auth": token}}}))
        return path

    def start(self) -> Registry:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{self.port}"},
        }
        if self.tls:
            certificate, key = _self_signed(self.directory)
            config["http"] = {
                "addr": f"127.0.0.1:{self.port}",
                "tls": {"certificate": str(certificate), "key": str(key)},
            }
        if self.username:
            assert self.password is not None
            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
            (self.directory / "htpasswd").write_text(f"{self.username}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "test", "path": str(self.directory / "htpasswd")}}
        (self.directory / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        with (self.directory / "registry.log").open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [registry_binary(), "serve", str(self.directory / "config.yml")], stdout=log, stderr=log
            )
        scheme = "https" if self.tls else "http"
        deadline = time.monotonic() + 300  # a safety net: the loop waits for the registry to answer
        while time.monotonic() < deadline:
            try:
                verify = ssl.create_default_context(cafile=str(self.certificate)) if self.tls else False
                httpx.get(f"{scheme}://{self.host}/v2/", verify=verify, timeout=1)
                return self
            except httpx.HTTPError:
                if self.process.poll() is not None:
                    raise RuntimeError((self.directory / "registry.log").read_text()) from None
                time.sleep(0.05)
        raise RuntimeError("registry did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
