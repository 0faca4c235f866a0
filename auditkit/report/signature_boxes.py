"""The cover's two signature boxes, shared by the renderer that lays them out
(:mod:`auditkit.report.render`) and the signer that places the widgets on them
(:mod:`auditkit.report.sign`).
"""

from __future__ import annotations

#: Named destinations = HTML ids of the cover's two signature boxes
#: (reports/templates/report.html.j2); sign.py places the signature widgets on them.
AUTHOR_FIELD = "AuditSignature"
COUNTERSIGN_FIELD = "Countersignature"
#: width and height of each box in millimetres, fixed by reports/templates/report.css (.sigbox)
SIGNATURE_BOX_MM = (84.0, 26.0)
