"""Attestation intake: the evidence a runtime brings (``evidence``: the kinds and the policy's ``security``
section; ``hardware``; ``kubernetes`` tokens), the single-use nonces it answers (``nonces``), and the volume
credentials an attestation grants (``credentials``)."""
