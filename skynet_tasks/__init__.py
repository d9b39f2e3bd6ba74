"""Skynet: a self-deploying cluster agent for AWS."""

# The only place the version is written: pyproject.toml reads it from here (a dynamic version),
# and an agent installed with `pip install --target` reports it without any package metadata.
__version__ = "0.1.0"
