"""Service modules: the rules of imgate. No MQTT here: services return outcomes."""
