"""The reverse-proxy layer: nginx configuration rendered from the endpoints table."""
