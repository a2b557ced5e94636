"""The terminal: `sada preview` talks to a flow through the same controller as chat."""
