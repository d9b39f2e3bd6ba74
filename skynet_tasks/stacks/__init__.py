"""CloudFormation stacks Skynet ships (in cloudformation/; skynet_tasks/cloudformation links to it)."""
