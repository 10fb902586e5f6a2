"""A small Django site used by the wsgate integration tests and benchmark."""
