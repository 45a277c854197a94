"""The message-event queue: the messages service writes it, in each message's own transaction;
push and search indexing read it, each at its own offset."""
