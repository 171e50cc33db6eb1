"""What the tests share: the real servers they start, the images and evidence they build, the Pulumi hosts
they drive, and the small helpers every room needs. Test modules import from here; nothing here imports a
test module.

- :mod:`.paths` — where the repository, its fixtures and the tests' own programs are
- :mod:`.processes` — free ports, waiting for a state, the ``sconify`` command
- :mod:`.cas`, :mod:`.postgres`, :mod:`.registry` — a real CAS, PostgreSQL server and OCI registry
- :mod:`.policies`, :mod:`.issuer`, :mod:`.chart`, :mod:`.fspf_trees` — test data
- :mod:`.images` — native images built locally (no Docker Hub here) and the confidential counter
- :mod:`.evidence` — forged and software hardware evidence (SEV-SNP, TDX, a software TPM, configfs-tsm)
- :mod:`.pulumi` — the strict mock monitor, the gRPC plugin host, program runners, the real engine
"""
