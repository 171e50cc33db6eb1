"""Hardware attestation evidence, verified: AMD SEV-SNP reports, Intel TDX quotes and Azure confidential
VMs' vTPM evidence.

Each verifier is a pure function of the evidence, the policy's reference values, the trust anchors and
the time, and either returns a :class:`Verdict` (what the evidence says, and which checks ran) or raises
:class:`~..errors.EvidenceRefusedError` naming the check that refused it. The CAS and
``sconify evidence verify`` call the same functions.
"""

from ..errors import EvidenceRefusedError
from .verdict import Verdict

__all__ = ["EvidenceRefusedError", "Verdict"]
