"""For people: terminal views, the dashboard, graphs, briefs, watch."""
