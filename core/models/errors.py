"""Errors raised while resolving a base model; the API maps them to 4xx/5xx responses."""

from __future__ import annotations


class ModelResolutionError(Exception):
    """A base model could not be fetched, converted or loaded."""


class ModelNotFoundError(ModelResolutionError, ValueError):
    """The reference names no built-in model, local model directory or hub repository."""


class HubUnreachableError(ModelResolutionError):
    """A hub id was given but the Hugging Face Hub cannot be reached (or is switched off)."""
