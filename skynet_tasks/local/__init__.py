"""Local mode: a whole Skynet cluster on one machine, for trying it and for the tests."""
