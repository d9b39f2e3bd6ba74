"""Every ``SKYNET_*`` environment variable Skynet knows, declared once.

Each declaration says the variable's type, default, range, meaning and which processes
read it. ``skynet_tasks.settings.Settings.from_env`` refuses any other ``SKYNET_*`` name
(suggesting the nearest declared one) and any declared one whose value does not parse;
``docs/configuration.md``'s "Every variable" table is ``skynet config variables``'s output.

Some variables are not Skynet's settings but legitimately sit in an environment Skynet
code runs in: what Skynet gives the app (``SKYNET_RELEASE``…), what the user data reads
before Skynet is installed, the local cluster's and the tests' knobs. They are declared
too, so that no process refuses them, with ``field`` None: no ``Settings`` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass

# Who reads a variable. "app" means Skynet sets it for the app, its hooks and build steps.
READERS = {
    "worker": "skynet worker (an instance's Celery worker, with its conductor)",
    "cli": "the skynet operator commands",
    "webhook": "skynet webhook serve",
    "dashboard": "skynet monitor serve",
    "lambda": "the webhook's Lambda handler",
    "boot": "the instance's user data and python -m workers.boot",
    "app": "the app, its lifecycle hooks and build steps (set by Skynet, not read by it)",
    "stack": "python -m skynet_tasks.stacks.run (a stack recipe's services, run as the app)",
    "local": "the local cluster's own processes (moto's server, the load balancer)",
    "tests": "the test suite",
}
KINDS = ("text", "name", "path", "address", "number", "integer")
ALL = ("worker", "cli", "webhook", "dashboard", "lambda")


@dataclass(frozen=True)
class Variable:
    """One ``SKYNET_*`` variable: what it holds and who reads it."""

    name: str
    kind: str  # one of KINDS: how its value is checked
    default: str  # as written in the environment; "" means unset
    meaning: str
    readers: tuple[str, ...]
    field: str | None = None  # the Settings attribute it fills; None: not one of Skynet's settings
    low: float | None = None
    high: float | None = None
    secret: bool = False  # never shown, not even in an error

    @property
    def range(self) -> str:
        """The variable's allowed range as text (``low–high``), or empty if it has none."""
        return "" if self.low is None or self.high is None else f"{_plain(self.low)}–{_plain(self.high)}"


def _plain(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def _v(name: str, kind: str, default: str, meaning: str, readers: tuple[str, ...], field: str | None = None,
       low: float | None = None, high: float | None = None, secret: bool = False) -> Variable:
    return Variable(f"SKYNET_{name}", kind, default, meaning, readers, field, low, high, secret)


WORKER_CLI = ("worker", "cli")
VARIABLES: tuple[Variable, ...] = (
    # Where a process stands.
    _v("ENV", "name", "local", "The environment: every resource name starts `skynet-<env>-`.", (*ALL, "boot", "app"),
       "env"),
    _v("LAYER", "name", "api", "The layer of the stack (rp: the reverse proxies; api: the app).",
       ("worker", "cli", "boot", "app"), "layer"),
    _v("GROUP", "name", "", "The maintenance group [default: `<env>-<layer>`; on EC2 the `maintenance-group` tag].",
       ("worker", "cli"), "group"),
    _v("INSTANCE_ID", "name", "", "This instance's id (a worker needs one; on EC2 from instance metadata).",
       ("worker", "app", "stack"), "instance_id"),
    _v("ROOT", "path", "/srv/skynet", "The instance's folder: releases, current, logs, run.",
       ("worker", "boot", "app", "stack"), "root"),
    _v("CONFIG_DIR", "path", "/etc/config", "Where the layered config is synced for the app.", ("worker", "app"),
       "config_dir"),
    _v("REPO", "text", "", "The git repository the group deploys.", ("worker", "boot"), "repo"),
    _v("BRANCH", "text", "main", "The branch the group deploys (build steps see the built one).",
       ("worker", "app"), "branch"),
    _v("ADDRESS", "address", "127.0.0.1", "The instance's IP address, where the app listens and a proxy's nginx "
       "too (on EC2 from instance metadata).", ("worker", "app", "stack"), "address"),
    _v("APP_PORT", "integer", "8000", "The port the app listens on (the app sees it as PORT).", ("worker",),
       "app_port", 1, 65535),
    _v("CONFIG_BUCKET", "text", "", "The config bucket, for SKYNET_ENV's env only [default: the stack's name].",
       (*WORKER_CLI, "dashboard", "boot"), "config_bucket"),
    _v("REPO_BUCKET", "text", "", "The repo bucket (artifacts, logs, agent wheels), for SKYNET_ENV's env only "
       "[default: the stack's name].", (*WORKER_CLI, "dashboard", "boot"), "repo_bucket"),
    # Timing.
    _v("HEARTBEAT_INTERVAL", "number", "60", "Seconds between an instance's heartbeats.", ("worker",),
       "heartbeat_interval", 0.5, 3600),
    _v("HEARTBEAT_MAX_AGE", "number", "600", "Seconds after which an instance without a heartbeat counts as gone.",
       ("worker", "cli", "dashboard"), "heartbeat_max_age", 1, 86400),
    _v("POLL_WAIT", "integer", "20", "Seconds an SQS receive waits for a message (long polling).", ALL,
       "poll_wait", 0, 20),
    _v("POLL_INTERVAL", "number", "0", "Seconds a worker pauses after an empty receive.", ALL, "poll_interval", 0,
       300),
    _v("KEEP_RELEASES", "integer", "5", "Releases kept on an instance (the current one included).", ("worker",),
       "keep_releases", 2, 100),
    _v("RP_POLL", "number", "30", "A proxy's safety-net poll of the endpoints table, in seconds.", ("worker",),
       "rp_poll_interval", 0.5, 3600),
    _v("BUILD_NUDGE_AFTER", "number", "45", "Seconds after which a build nobody is running is requested again.",
       ("worker",), "build_nudge_after", 5, 3600),
    _v("PROXY_DRAIN_WAIT", "number", "10", "Seconds a proxy waits for requests in flight when it leaves.",
       ("worker",), "proxy_drain_wait", 0, 300),
    # Wiring.
    _v("BROKER_URL", "text", "sqs://", "Celery's broker (sqs:// takes the endpoint from AWS_ENDPOINT_URL).", ALL,
       "broker_url"),
    _v("LIFECYCLE_HOOK", "text", "", "The auto scaling lifecycle hook the worker completes at launch and "
       "termination.", ("worker", "boot"), "lifecycle_hook"),
    _v("WEBHOOK_UPSTREAM", "text", "", "`ip:port` of a webhook receiver a proxy fronts at `/hooks/github`.",
       ("worker",), "webhook_upstream"),
    _v("WEBHOOK_SECRET_ARN", "text", "", "The Secrets Manager secret holding the webhook secret (the stack's way).",
       ("lambda",), "webhook_secret_arn"),
    _v("WEBHOOK_SECRET_FILE", "text", "", "A file holding the webhook secret.", ("webhook", "lambda"),
       "webhook_secret_file"),
    _v("WEBHOOK_SECRET", "text", "", "The webhook secret itself (prefer the file or the ARN).",
       ("webhook", "lambda"), "webhook_secret", secret=True),
    _v("WEBHOOK_ROUTES", "text", "", "The webhook's routing table: a JSON file, or the JSON itself.",
       ("webhook", "lambda"), "webhook_routes"),
    # Read by their own processes, not Settings.
    _v("LOG_LEVEL", "text", "WARNING", "The log level (the --log-level option): DEBUG, INFO, WARNING or ERROR "
       "[default: WARNING; INFO for `skynet worker`].", ("worker", "cli", "webhook", "dashboard")),
    _v("LOG_FORMAT", "text", "text", "Log lines as `text` or `json` objects, with the fields rollout_id, ticket, "
       "instance, group, role and task when known (the --log-format option).", ("worker", "cli", "webhook",
                                                                                "dashboard")),
    _v("DASHBOARD_TOKEN_FILE", "text", "", "The dashboard's token file (the --token-file option).",
       ("dashboard",)),
    _v("DASHBOARD_READS", "text", "open", "Who may read the dashboard: `open` (anyone who reaches it) or `token` "
       "(the --reads option).", ("dashboard",)),
    _v("DASHBOARD_READ_TOKEN_FILE", "text", "", "A token file that may read the dashboard but never act (the "
       "--read-token-file option).", ("dashboard",)),
    _v("WHEEL_PARAMETER", "text", "", "The SSM parameter pinning the agent wheel an instance boots.", ("boot",)),
    _v("AGENT_PATH", "text", "", "Set by the worker when it re-executes on the installed agent.", ("worker",)),
    _v("STACK_USER", "text", "", "The user a stack recipe's services run as [default: the worker's user].",
       ("stack",)),
    _v("RELEASE", "text", "", "The release (commit sha) being installed or run.", ("app", "stack")),
    _v("ROLLOUT", "text", "", "The rollout installing it (boot at an instance's boot).", ("app",)),
    _v("TICKET", "text", "", "The instance's ticket in that rollout.", ("app",)),
    _v("SHA", "text", "", "The commit a build step builds.", ("app",)),
    _v("LB_LISTEN", "text", "", "The local load balancer's HOST:PORT.", ("local",)),
    _v("LB_TARGETS_FILE", "text", "", "The local load balancer's targets file.", ("local",)),
    _v("MODEL_EXAMPLES", "integer", "300", "Examples the conductor's model test explores.", ("tests",), low=1,
       high=1_000_000),
)
BY_NAME = {variable.name: variable for variable in VARIABLES}


def markdown_table() -> str:
    """The declarations as the Markdown table of docs/configuration.md's "Every variable"."""
    lines = ["| variable | type | default | range | read by | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for v in VARIABLES:
        default = f"`{v.default}`" if v.default else "unset"
        lines.append(f"| `{v.name}` | {v.kind} | {default} | {v.range} | {', '.join(v.readers)} | {v.meaning} |")
    lines += ["", "Readers:", ""] + [f"- **{reader}**: {what}" for reader, what in READERS.items()]
    return "\n".join(lines) + "\n"
