"""What runs inside confidential containers: the image's entrypoint (``sconify run``).

:mod:`.launcher` runs the steps — measure the image (:mod:`.measure`), attest to the CAS and fetch the
configuration (:mod:`.cas`, with hardware evidence from :mod:`.hardware` and :mod:`.tpm`), verify and decrypt
the protected regions, open the volumes, run the program and commit. :mod:`.protocol` is the vocabulary the
runtime and the CAS share. Copied whole into images with ``fspf`` (by :mod:`..image.bundle`), so it imports
only the standard library, ``cryptography`` and ``fspf``.
"""
