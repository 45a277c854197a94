"""The bridge: the only place that knows topics and payload shapes."""
