"""The event schema page: a type's JSON Schema, its example, whether it rejects or warns, and a custom type's
schema to edit."""
