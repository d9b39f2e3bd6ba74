"""Layered configuration: read from S3 and DynamoDB, merged, synced atomically to the instance.

Trust: everything read from the config bucket and table is untrusted input until
``paths.check_config_path`` and ``sources`` have checked it: object keys and item
paths become file names on the instance, and item values become file contents.
"""
