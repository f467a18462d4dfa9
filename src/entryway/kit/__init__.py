"""Building blocks with no web and no database: clock, ids, minted secrets, local CA."""
