"""instdecay.generate (filled in by later issues)."""
