"""The e2e suite: one folder per guide section and per pass; see e2e/conftest.py."""
