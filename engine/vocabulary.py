"""The names that cross rooms: the CAS's two APIs and their ports, the evidence kinds, and how a CAS address
is written. The CLI, the policy, the chart, the CAS, the attestation checks and the runtime all speak of
these; each is written once, here. This module ships into confidential images with the runtime: standard
library only.
"""

from __future__ import annotations

ATTESTATION_PORT = 18765
"""The CAS's attestation API (server-authenticated TLS), SCONE's port."""
CLIENT_PORT = 8081
"""The CAS's client API (mutual TLS: sessions), SCONE's port."""
KUBERNETES = "kubernetes"
"""Evidence: the pod's projected service-account token, audience the CAS."""
INSECURE_SOFTWARE_EVIDENCE = "insecure-software-evidence"
"""Evidence *and* the toleration that admits it: the runtime's own word, which anyone can make up."""
SEV_SNP = "sev-snp"
"""Evidence: an AMD SEV-SNP report (``report``, base64) with :func:`hardware_report_data`, and the
extended report's certificate table (``certificates``) when the platform has one."""
TDX = "tdx"
"""Evidence: an Intel TDX quote (``quote``, base64) with :func:`hardware_report_data`."""
AZURE_CVM = "azure-cvm"
"""Evidence: an Azure confidential VM's HCL report (``hcl_report``), a vTPM quote (``quote``,
``signature``) whose qualifying data is :func:`evidence_binding`, and the quoted PCRs (``pcrs``)."""
HARDWARE_KINDS = (SEV_SNP, TDX, AZURE_CVM)


def cas_host_and_port(address: str, default_port: int) -> tuple[str, int]:
    """A CAS address as users write it — ``host``, ``host:port``, ``[IPv6]`` or ``[IPv6]:port`` — with the
    API's port when none is given (one rule for the runtime, the clients and the CLI). A bare IPv6 address,
    which has colons of its own, is a host without a port. The host comes back without brackets."""
    if address.startswith("["):
        host, closed, rest = address[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"{address!r}: expected [IPv6] or [IPv6]:PORT")
        port = rest.removeprefix(":")
        return host, int(port) if port else default_port
    host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
    return host or address, int(port) if port else default_port


def url_host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
