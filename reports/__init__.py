"""The consolidated report (tổng hợp) of an agreement: computed once, rendered many ways.

`model` holds what a report says (`ConsolidatedReport`) and what it is computed from
(`ReportInputs`: the engine's facts and the stored submissions, waivers and extensions);
`consolidate` computes it, purely; `markdown`, `xlsx`, `docx` and `charts` only render it.
The CLI (`accord report`), the digest mail, `accord simulate --report` and the portal gather
the inputs (`activities.reporting`) and call these.

Layer: above the domain and the payload types (`agreements`, `activities.models`), below the
activities that gather the inputs and mail the digest. No database, engine or mail here.
"""
