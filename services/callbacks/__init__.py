"""Integration callbacks (docs/callbacks.md): the operator's endpoints that decide on a send
before it is stored (``before_*``) and hear of what happened after (``after_*``, membership and
user events, from a durable outbox). This package owns the signing and the endpoints' settings'
reading; the HTTP goes through the shared outbound guard (``services.netguard``)."""
