"""Clients of a CAS: who a client is (``identity``), the HTTP clients of both APIs (``client``), and
uploads as owners make them (``upload``)."""
