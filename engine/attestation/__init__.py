"""Hardware attestation evidence, verified: AMD SEV-SNP reports, Intel TDX quotes and Azure confidential
VMs' vTPM evidence.

Each verifier is a pure function of the evidence, the policy's reference values, the trust anchors and
the time, and either returns a :class:`Verdict` (what the evidence says, and which checks ran) or raises
:class:`~..errors.EvidenceRefusedError` naming the check that refused it. The CAS and
``sconify evidence verify`` call the same functions (docs/attestation.md).
"""

from ..errors import EvidenceRefusedError
from .azure import AzureEvidence, verify_evidence as verify_azure_cvm
from .offline import OfflineOptions, verify_file
from .snp import AmdAnchors, verify_report as verify_sev_snp
from .tdx import Collateral, verify_quote as verify_tdx
from .verdict import Verdict

__all__ = [
    "AmdAnchors",
    "AzureEvidence",
    "Collateral",
    "EvidenceRefusedError",
    "OfflineOptions",
    "Verdict",
    "verify_azure_cvm",
    "verify_file",
    "verify_sev_snp",
    "verify_tdx",
]
