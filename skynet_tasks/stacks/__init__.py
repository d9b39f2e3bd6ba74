"""CloudFormation stacks Skynet ships (cloudformation/ at the repository root)."""
