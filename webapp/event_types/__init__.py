"""Dashboard pages: event_types."""
