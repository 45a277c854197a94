"""The operator's before_* callbacks (docs/callbacks.md "Before"): an endpoint asked, and waited
for, before a send, an edit or a profile change is stored. Apart from ``services.callbacks`` (the
signature, the HTTP client, the after events' outbox), which the message, group and user services
write into: this package asks the messages' types, so it sits above them."""
