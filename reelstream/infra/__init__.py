"""Local infrastructure launchers: real Cassandra and Redis processes for development and tests."""
