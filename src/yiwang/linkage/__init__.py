"""一口受理, 联动办理 (linkage): one intake for every channel, cases handled jointly by
departments within their time limits. This package grows over issue 4; it starts with the
working-day calendar and the SLA clock."""
