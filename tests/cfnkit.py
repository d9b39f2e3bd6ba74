"""Where the tests find the php-nginx CloudFormation stack's template."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent.parent
TEMPLATE = ROOT / "cloudformation" / "php-nginx.yaml"
