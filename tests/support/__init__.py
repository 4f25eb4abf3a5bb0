"""Test support code that is not a test: fault injection and other harnesses."""
