"""Reelstream shared runtime."""
