"""Counter tier: sharded, fenced, exactly-once view and like counters on Cassandra."""
