"""The GitHub webhook receiver: the only door from the internet into the deployment machinery."""
