"""instdecay.release (filled in by later issues)."""
