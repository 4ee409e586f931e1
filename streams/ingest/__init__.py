"""Ingest: decode and validate raw input messages; build dead letters for the rest. Pure."""

from streams.ingest.validate import RawMessage, Rejection, Validator, dead_letter

__all__ = ["RawMessage", "Rejection", "Validator", "dead_letter"]
