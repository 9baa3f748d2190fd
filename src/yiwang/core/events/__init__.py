"""Transactional outbox and event handlers."""
