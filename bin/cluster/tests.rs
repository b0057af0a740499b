//! The builder's tests: settings that interact, and what it refuses.

use super::*;

/// The workers' drain and the master's patience for it are one setting,
/// whichever builder method set it last.
#[test]
fn a_drain_timeout_set_through_the_engine_is_the_masters_too() {
    let cluster = Cluster::new().shutdown_timeout(Duration::from_secs(2)).configure(|e| {
        e.drain_timeout = Duration::from_secs(10);
    });
    assert_eq!(cluster.master.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(cluster.master.engine.drain_timeout, Duration::from_secs(10));
    let engine = EngineConfig { drain_timeout: Duration::from_secs(7), ..EngineConfig::default() };
    let cluster = Cluster::new().shutdown_timeout(Duration::from_secs(2)).engine(engine);
    assert_eq!(cluster.master.shutdown_timeout, Duration::from_secs(7));
    let cluster = Cluster::new().configure(|e| e.max_body = 1).shutdown_timeout(Duration::from_secs(3));
    assert_eq!(
        (cluster.master.shutdown_timeout, cluster.master.engine.drain_timeout),
        (Duration::from_secs(3), Duration::from_secs(3))
    );
}

/// What the loops cannot run with is refused before any worker starts.
#[test]
fn an_engine_the_loops_cannot_run_with_is_refused() {
    assert_eq!(engine_problem(&EngineConfig::default()), None);
    type Change = fn(&mut EngineConfig);
    let bad: [(&str, Change); 7] = [
        ("recv_buffers 1000", |e| e.recv_buffers = 1000),
        ("recv_buffers 0", |e| e.recv_buffers = 0),
        ("ring_entries", |e| e.ring_entries = 0),
        ("recv_buffer_size", |e| e.recv_buffer_size = 0),
        ("max_conns 0", |e| e.max_conns = 0),
        ("header_timeout", |e| e.header_timeout = Duration::ZERO),
        ("health_path", |e| e.health_path = Some("healthz".to_string())),
    ];
    for (what, change) in bad {
        let mut engine = EngineConfig::default();
        change(&mut engine);
        let problem = engine_problem(&engine).unwrap_or_default();
        assert!(problem.starts_with("engine: ") && problem.contains(what), "{what}: {problem:?}");
    }
}

/// Zero turns the watchdog off, as `--watchdog 0` does.
#[test]
fn a_zero_watchdog_is_none() {
    assert_eq!(Cluster::new().watchdog(Some(Duration::ZERO)).master.watchdog, None);
    let limit = Some(Duration::from_secs(5));
    assert_eq!(Cluster::new().watchdog(limit).master.watchdog, limit);
}

/// The builder refuses what `--health-path` refuses: a path no request
/// can name would leave every probe to the handler.
#[test]
fn a_health_path_that_is_not_a_path_is_refused() {
    for bad in ["", "healthz", "/health z", "/h\x7f"] {
        let cluster = Cluster::new().health_path(bad);
        assert!(cluster.invalid.as_deref().is_some_and(|e| e.starts_with("health_path: ")), "{bad:?}");
    }
    let cluster = Cluster::new().health_path("/healthz");
    assert_eq!((cluster.invalid, cluster.master.engine.health_path.as_deref()), (None, Some("/healthz")));
}

/// The builder takes the addresses `--bind` and `--metrics` take: an
/// IPv6 zone by an interface's name as well as by its index, through
/// the same parser. Until 2026-12-07 a name was refused (`bind: failed
/// to lookup address information: Name or service not known`).
#[test]
fn an_ipv6_zone_may_name_its_interface() {
    let lo = nix::net::if_::if_nametoindex("lo").expect("lo exists everywhere");
    let at = |port| SocketAddr::V6(std::net::SocketAddrV6::new("fe80::1".parse().expect("an address"), port, 0, lo));
    let cluster = Cluster::new().bind("[fe80::1%lo]:80").metrics(String::from("[fe80::1%lo]:9100"));
    assert_eq!((cluster.invalid, cluster.master.bind, cluster.master.metrics), (None, at(80), Some(at(9100))));
    let cluster = Cluster::new().bind(format!("[fe80::1%{lo}]:80"));
    assert_eq!((cluster.invalid, cluster.master.bind), (None, at(80)));
    // What `ToSocketAddrs` takes is taken as before.
    assert_eq!(Cluster::new().bind(at(81)).master.bind, at(81));
    assert_eq!(Cluster::new().bind(("127.0.0.1", 8000)).master.bind, "127.0.0.1:8000".parse().expect("v4"));
    assert_eq!(Cluster::new().bind("localhost:8000").master.bind.port(), 8000);
    let cluster = Cluster::new().bind("[fe80::1%ringmaster-none]:80");
    let invalid = cluster.invalid.unwrap_or_default();
    assert!(invalid.starts_with("bind: ") && invalid.contains("no interface named 'ringmaster-none'"), "{invalid}");
}

/// A cluster parsed from `NAME ctl ...` says so, and takes its name from
/// the cluster as it is when served (a `Cluster::name` after the parse).
#[test]
fn a_ctl_cluster_says_so_and_keeps_the_name_given_after_it() {
    use clap::{Args, FromArgMatches};
    assert!(!Cluster::new().is_ctl());
    let command = CtlArgs::augment_args(clap::Command::new("own_flags"));
    let matches = command.try_get_matches_from(["own_flags", "/tmp/x.sock", "status"]);
    let args = matches.and_then(|m| CtlArgs::from_arg_matches(&m)).unwrap_or_else(|e| panic!("{e}"));
    let cluster = Cluster::new().run_ctl(args).name("myapp");
    assert!(cluster.is_ctl());
    assert_eq!(cluster.program_name(), "myapp");
}
