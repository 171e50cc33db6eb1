"""Native images built for the tests with tarfile and debootstrap, and the counter sconified from them."""
