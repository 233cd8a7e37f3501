"""Dashboard pages: endpoints."""
