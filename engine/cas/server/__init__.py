"""The CAS's front: what it does (``service``, independent of HTTP), its HTTP server on Twisted, the bounds
that keep it up under load (``ratelimit``, ``refusals``) and the options ``cas serve`` takes (``options``)."""
