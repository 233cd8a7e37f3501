"""Dashboard pages: keys."""
