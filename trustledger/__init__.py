"""Project-wide definitions shared by every package (today: the root of the error tree)."""
