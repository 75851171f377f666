"""One router per topic."""
