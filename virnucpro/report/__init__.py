"""What a person reads: the figures, the calls page and the HTML around the tables."""
