"""Models as data: the catalogue, where weights come from, the budgeted cache and device choice."""
