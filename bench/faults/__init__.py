"""The fault suite (``python -m bench.faults``): crashes, database outages, reconnect storms,
abuse and slow consumers against the real ``imgate run``, audited for lost and duplicated
messages. See bench/README.md, "Fault suite"."""
