"""The runtime of confidential containers, from the engine's side.

What runs in a container is one static binary built from ``runtime/`` (Go), found by :mod:`.binary`. Here is
the Python half of what it and the engine must compute alike — :mod:`.protocol` (the attestation exchange),
:mod:`.measure` (the measurement the sconifier predicts and the runtime recomputes) — held together by shared
test vectors; and the engine's own client of the attestation API (:mod:`.cas`, with evidence from
:mod:`.hardware` and :mod:`.tpm`), which ``sconify evidence`` and the tests use.
"""
