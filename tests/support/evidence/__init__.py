"""Hardware evidence for the tests: forged SEV-SNP and TDX reports, a software TPM, a configfs-tsm fake."""
