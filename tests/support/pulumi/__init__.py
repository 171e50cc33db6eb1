"""Pulumi for the tests: the strict mock monitor, the plugin's gRPC host, program runners, the real engine."""
