"""Figure → PNG bytes, shared by every report figure."""

from __future__ import annotations

import io

from matplotlib.figure import Figure

#: Resolution of every report figure (pixels per inch).
DPI = 100


def to_png(fig: Figure) -> bytes:
    """Render ``fig`` with Agg to PNG bytes (tight bounding box, white background)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()
