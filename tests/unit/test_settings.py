from pathlib import Path

import pytest

from counter.config import CounterConfig
from edge.config import EdgeConfig
from reelstream.settings import ConfigError, load_config


def test_environment_overrides_toml_which_overrides_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "reelstream.toml"
    toml.write_text('[edge]\nname = "edge-toml"\nflush_interval_s = 0.05\n')
    config = load_config(
        EdgeConfig,
        "REELSTREAM_EDGE_",
        "edge",
        environ={
            "REELSTREAM_CONFIG": str(toml),
            "REELSTREAM_EDGE_NAME": "edge-env",
            "REELSTREAM_EDGE_COUNTER_ADDRESSES": "a:1, b:2",
        },
    )
    assert config.name == "edge-env"
    assert config.flush_interval_s == 0.05
    assert config.counter_addresses == ("a:1", "b:2")


def test_a_malformed_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="REELSTREAM_COUNTER_SHARD_COUNT"):
        load_config(
            CounterConfig,
            "REELSTREAM_COUNTER_",
            "counter",
            environ={"REELSTREAM_COUNTER_SHARD_COUNT": "two"},
        )


def test_a_ring_without_shards_is_refused() -> None:
    with pytest.raises(ConfigError, match="not in"):
        load_config(
            CounterConfig,
            "REELSTREAM_COUNTER_",
            "counter",
            environ={"REELSTREAM_COUNTER_SHARD_COUNT": "0"},
        )


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("REELSTREAM_COUNTER_MEMBER_TTL_S", "5", "member_ttl_s must be at least lease_ttl_s"),
        ("REELSTREAM_COUNTER_MINUTE_BUCKETS_IN_MEMORY_S", "10", "at least 60 s"),
    ],
)
def test_counter_timings_that_would_misbehave_are_refused(
    variable: str, value: str, reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        load_config(CounterConfig, "REELSTREAM_COUNTER_", "counter", environ={variable: value})


def test_unknown_toml_keys_are_refused(tmp_path: Path) -> None:
    toml = tmp_path / "reelstream.toml"
    toml.write_text("[counter]\nshardz = 1\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_config(
            CounterConfig,
            "REELSTREAM_COUNTER_",
            "counter",
            environ={"REELSTREAM_CONFIG": str(toml)},
        )


def test_replication_renders_simple_and_network_topology_maps() -> None:
    from reelstream.cassandra_client import CassandraSettings

    simple = CassandraSettings(("h",), 9042, "ks", replication="SimpleStrategy:3")
    assert simple.replication_cql() == "{'class': 'SimpleStrategy', 'replication_factor': 3}"
    nts = CassandraSettings(("h",), 9042, "ks", replication="NetworkTopologyStrategy:dc1=3,dc2=2")
    assert nts.replication_cql() == ("{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}")
    with pytest.raises(ValueError, match="SimpleStrategy"):
        CassandraSettings(("h",), 9042, "ks", replication="Simple:x").replication_cql()


def test_one_node_and_three_node_cassandra_settings_come_from_the_same_fields() -> None:
    environ = {
        "REELSTREAM_COUNTER_CASSANDRA_HOSTS": "127.0.0.11,127.0.0.12,127.0.0.13",
        "REELSTREAM_COUNTER_REPLICATION": "SimpleStrategy:3",
        "REELSTREAM_COUNTER_CONSISTENCY": "QUORUM",
    }
    config = load_config(CounterConfig, "REELSTREAM_COUNTER_", "counter", environ=environ)
    assert config.cassandra_hosts == ("127.0.0.11", "127.0.0.12", "127.0.0.13")
    assert (config.replication, config.consistency) == ("SimpleStrategy:3", "QUORUM")
    single = load_config(CounterConfig, "REELSTREAM_COUNTER_", "counter", environ={})
    assert (single.replication, single.consistency) == ("SimpleStrategy:1", "LOCAL_QUORUM")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("CONSISTENCY", "QUORM", "use one of"),
        ("REPLICATION", "SimpleStrategy:0", "use SimpleStrategy"),
        ("REPLICATION", "Simple:3", "use SimpleStrategy"),
    ],
)
def test_a_bad_consistency_or_replication_is_refused_at_start_up(
    field: str, value: str, reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        load_config(
            CounterConfig,
            "REELSTREAM_COUNTER_",
            "counter",
            environ={f"REELSTREAM_COUNTER_{field}": value},
        )
