"""The studio: ``panel serve studio/app.py``.

Serves a function so that each browser session gets its own state.  The full explorer
and listening tests arrive with the studio issue; until then this page shows which
checkpoints and vocoder the studio would use.
"""

from __future__ import annotations

import panel as pn

from studio.placeholder import build_page

pn.extension()

build_page().servable(title="flowtts studio")
