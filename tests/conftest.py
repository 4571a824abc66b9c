"""Suite-wide: relays started by tests note their token files in a private folder, not the user's."""

import os
import tempfile

os.environ.setdefault("GUNRELAY_STATE_DIR", tempfile.mkdtemp(prefix="gunrelay-state-"))
