"""The open engine of pulumi-sconify: policy, file-system protection, images, CAS, runtime, charts, and the
``sconify`` command over them.

The engine imports neither Pulumi nor the rest of this package (``provider``, ``components``): the layers go
one way — the plugin (``provider/plugin``) → components → resources (``provider/resources``) → engine — and a
test enforces it (``tests/test_architecture.py``). What runs inside confidential images is ``runtime`` with
``fspf`` and the shared ``errors``, ``layout`` and ``vocabulary``: standard library and ``cryptography`` only.
"""
