"""The CAS's durable state: the store on SQLite or PostgreSQL (``store``, ``database``), what keeps it
honest (``integrity``, ``anchor``), what brings it back (``backup``, ``recovery``), what bounds it
(``quotas``), and the policies and secrets it keeps (``models``, ``secret_values``)."""
