"""instdecay.loaders (filled in by later issues)."""
