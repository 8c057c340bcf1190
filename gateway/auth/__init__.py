"""Who is calling (authenticators) and what they may upload to (authorizer), R-G6/R-G7."""
