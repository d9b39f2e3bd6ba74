"""Skynet: a self-deploying cluster agent for AWS."""

__version__ = "0.1.0"
