"""Groups: the rules of group conversations (roles, who may add or remove whom)."""
