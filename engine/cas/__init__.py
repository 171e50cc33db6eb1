"""The Configuration and Attestation Service: its store, its rules, its HTTP front and its clients."""
