//! The integration tests: each module drives the real binary (or an
//! example, or the eBPF program) over real sockets on 127.0.0.1, or in
//! network namespaces it makes. They are one test binary so that `util` and
//! the linking happen once, not once per file: `cargo test --test suite
//! MODULE::` runs one file's tests.

mod util;

mod backend_epoll;
mod backend_fallback;
mod backend_parity;
mod balance_least;
mod balance_reuseport;
mod balance_stall;
mod balance_steer;
mod balancer_config;
mod balancer_lifecycle;
mod balancer_max_conns;
mod balancer_rr;
mod balancer_shared;
mod http_bodies;
mod http_chunk_limits;
mod http_concurrency;
mod http_direct;
mod http_errors;
mod http_health;
mod http_keepalive;
mod http_pipelining;
mod http_slow_body;
mod http_timeouts;
mod library_examples;
mod multihost;
mod operator_cli;
mod operator_drain_delay;
mod operator_logs;
mod operator_metrics;
mod operator_output_pipes;
mod operator_privileges;
mod operator_systemd;
mod operator_table;
mod operator_titles;
mod reliability_address_space;
mod reliability_control_socket;
mod reliability_fd_limits;
mod reliability_full_workers;
mod reliability_hand_off_refused;
mod reliability_idle_reclaim;
mod reliability_locked_memory;
mod reliability_stop_at_fd_limit;
mod reliability_worker_fd_capacity;
mod steer_program;
mod supervisor_backlog;
mod supervisor_capacity;
mod supervisor_control;
mod supervisor_reload;
mod supervisor_reload_not_ready;
mod supervisor_restart;
mod supervisor_retiree_exits;
mod supervisor_scale;
mod supervisor_scale_counts;
mod supervisor_scale_during_reload;
mod supervisor_scale_pending_restart;
mod supervisor_start_not_ready;
mod supervisor_stop;
mod supervisor_stop_custody;
mod supervisor_stop_exit;
mod supervisor_stop_hand_off;
mod supervisor_stop_stuck_worker;
mod upgrade_binary_replaced;
mod upgrade_chained;
mod upgrade_descriptors;
mod upgrade_failure;
mod upgrade_held;
mod upgrade_late;
mod upgrade_not_a_child;
mod upgrade_pipelined_commands;
mod upgrade_seamless;
mod upgrade_stopped_after_ready;
