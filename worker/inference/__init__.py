"""The inference server: hosts `core.inference.Engine`s (one per base model) behind internal HTTP."""
