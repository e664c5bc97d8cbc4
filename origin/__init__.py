"""Origin tier: uploads, transcoding, reel metadata, media for edges, spam and moderation."""
