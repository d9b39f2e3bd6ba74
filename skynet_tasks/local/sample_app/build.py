"""The sample app's build step: records what was built."""

import json
import os
import pathlib

pathlib.Path("build-info.json").write_text(json.dumps({"sha": os.environ.get("SKYNET_SHA", "")}))
