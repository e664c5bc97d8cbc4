"""Edge tier: HLS serving, event intake, durable journal, batched forwarding to counters."""
