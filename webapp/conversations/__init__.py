"""Conversation and run timelines: what an agent did, in order, and who heard about it."""
