"""keras-vis' ``vis.utils`` package."""
