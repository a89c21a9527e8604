//! Troupe's integration tests: one binary, a module per feature.
//!
//! Every test runs the real server, in-process on `127.0.0.1:0` through
//! [`support::server::TestServer`] or as the real `troupe` binary through
//! [`support::daemon::Daemon`], and talks to it with real clients (hyper,
//! raw TCP).

mod support;

mod access;
mod access_log;
mod acme;
mod admin;
mod admin_guard;
mod basic_auth;
mod bulkhead;
mod cli;
mod client_input;
mod compression;
mod config_errors;
mod conn_caps;
mod control;
mod cors;
mod differential;
mod error_pages;
mod expires;
mod forward_auth;
mod health;
mod http;
mod includes;
mod isolation;
mod kv_quota;
mod large_files;
mod log_format;
mod lua;
mod module_roles;
mod module_ws;
mod module_ws_lua;
mod module_ws_reload;
mod module_ws_upkeep;
mod module_ws_wasm;
mod modules;
mod process_children;
mod prompt_exit;
mod props;
mod proxy;
mod proxy_big;
mod proxy_cache;
mod proxy_keepalive;
mod proxy_names;
mod proxy_upstream_tls;
mod query_params;
mod rate_key;
mod rate_limit;
mod rate_limit_nginx;
mod reload;
mod rewrite;
mod robustness;
mod routing;
mod service;
mod shutdown;
mod slow_clients;
mod static_cache;
mod static_files;
mod strict_http;
mod strict_rfc;
mod supervision;
mod timeouts;
mod tls;
mod tls_outside;
mod tls_reload;
mod try_files;
mod tunnel_pump;
mod tutorial;
mod ui;
mod unix_socket;
mod upstream_choice;
mod wasm;
mod websocket;
mod zero_downtime;
