"""Content moderation of the origin tier: upload analysis, hash banks, reports, review, takedown."""
