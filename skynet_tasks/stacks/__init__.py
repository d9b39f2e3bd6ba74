"""CloudFormation stacks Skynet ships (in cloudformation/; skynet_tasks/cloudformation links to it)."""


class StackError(ValueError):
    """A stack cannot be rendered or deployed: a bad template, parameter, wheel or Lambda zip."""
