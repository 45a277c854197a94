"""The embedded MQTT broker (3.1.1 and 5.0): a sans-IO protocol core (``codec``, ``connection``),
an asyncio shell per connection (``link``) behind TCP, TLS and WebSocket listeners, and the
hub, gate and router that apply imgate's authentication, ACL, sessions and presence."""
