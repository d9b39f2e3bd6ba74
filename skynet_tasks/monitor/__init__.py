"""The dashboard: read-only views of a cluster's state, operator actions, a JSON API and metrics."""
