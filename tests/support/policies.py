"""Session texts for the CAS tests."""

from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pulumi_sconify.engine.policy import (
    KubernetesIdentity,
    Secret,
    SecretKind,
    Session,
    namespace_session,
    render_session,
    sconified_session,
    validate_session,
)

MEASUREMENT = "ab" * 32
RUNTIME_KEY = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
"""A runtime's public key, as a runtime makes one (the CAS refuses keys of small order)."""
FSPF_KEY = "cd" * 32
FSPF_TAG = "ef" * 16


def namespace(name: str = "ns-1") -> str:
    return render_session(namespace_session(name))


def counter(
    namespace_name: str = "ns-1",
    *,
    insecure: bool = True,
    kubernetes: KubernetesIdentity | None = None,
    predecessor: str | None = None,
    **changes: object,
) -> Session:
    """The counter policy, with two generated secrets used through placeholders and an exported CA;
    ``insecure`` tolerates self-reported evidence, ``kubernetes`` pins a workload identity."""
    session = sconified_session(
        namespace=namespace_name,
        session="python-session",
        service="python-service",
        mrenclave=MEASUREMENT,
        command="python3 /code/app.py",
        fspf_key=FSPF_KEY,
        fspf_tag=FSPF_TAG,
        volumes={"V1": "/V1"},
        tolerate=("debug-mode",),
        insecure_software_evidence=insecure,
        predecessor=predecessor,
        kubernetes=kubernetes,
    )
    service = dataclasses.replace(
        session.services[0],
        command="python3 /code/app.py --password $$SCONE::db_password$$",
        environment={"LANG": "C.UTF-8", "TOKEN": "$$SCONE::api_token$$"},
    )
    session = dataclasses.replace(
        session,
        services=(service,),
        secrets=(
            Secret("db_password", SecretKind.ASCII, size=24),
            Secret("api_token", SecretKind.BINARY, size=16),
            Secret("ca", SecretKind.X509_CA, export_public=True),
        ),
    )
    return validate_session(dataclasses.replace(session, **changes))  # type: ignore[arg-type]


def with_pwd(session: Session, pwd: str) -> Session:
    """A variant of a session that differs only in the service's working directory."""
    return validate_session(
        dataclasses.replace(session, services=(dataclasses.replace(session.services[0], pwd=pwd),))
    )


def text(session: Session) -> str:
    return render_session(session)


def large_policy(name: str, services: int = 1000, variables: int = 15) -> str:
    """A valid policy just under the 1 MiB limit, slow to parse (about half a second here)."""
    lines = [f"name: {name}", 'version: "0.3"', "services:"]
    for index in range(services):
        lines.append(f'  - name: s{index}\n    image_name: img\n    mrenclaves: ["{"ab" * 32}"]')
        lines.append(f'    command: "python3 /app.py --flag {index}"\n    environment:')
        lines.extend(f'      V{j}: "value-{index}-{j}-padding-padding-padding"' for j in range(variables))
    lines.append("images:\n  - name: img")
    return "\n".join(lines)


def large_namespace(name: str) -> str:
    """A namespace's policy of some 900 KiB (a comment makes it large)."""
    return render_session(namespace_session(name)) + "\n#" + "-" * (900 * 1024) + "\n"
