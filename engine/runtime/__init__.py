"""What runs inside confidential containers, and how it gets there.

So far: :mod:`.bundle`, which assembles the runtime's own code and its one native dependency
(cryptography, with cffi) for the image's libc, Python version and architecture. The runtime itself
(attestation, region verification, volumes, running the program) is the next piece of work.
"""
