//! The `raftka-node` binary: parse flags, set up logging, run until SIGTERM or Ctrl-C.

use clap::Parser;
use raftka_node::config::LogFormat;
use raftka_node::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut config = Config::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logger
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object per line; the fields of the current span (the request id) sit at the top
        // level of each line's `span` object, and all enclosing spans are in `spans`.
        LogFormat::Json => logger
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    if let Err(e) = config.prepare() {
        eprintln!("raftka-node: {e}");
        return std::process::ExitCode::from(2);
    }
    let mut shown = config.clone();
    shown.secret = Some("<redacted>".into());
    if shown.admin_token.is_some() {
        shown.admin_token = Some("<redacted>".into());
    }
    tracing::info!(config = ?shown, "starting");
    match (config.auth, config.admin_token.is_some()) {
        (raftka_node::config::AuthMode::Off, _) => tracing::warn!(
            "auth is off: any client that reaches this node may produce, read, alter and \
             delete anything (--auth required turns on bearer tokens and ACLs)"
        ),
        (raftka_node::config::AuthMode::Required, false) => tracing::info!(
            "auth required, no --admin-token-file: only users created earlier can sign in"
        ),
        (raftka_node::config::AuthMode::Required, true) => {
            tracing::info!("auth required; the bootstrap admin token is set")
        }
    }
    if config.is_single_node() {
        tracing::info!(
            data_dir = %config.data_dir.display(),
            "single-node cluster: topics get replication factor 1; other nodes can join it \
             later (--join, with this node's cluster secret)"
        );
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("raftka-node: cannot listen on {}: {e}", config.listen);
            return std::process::ExitCode::from(1);
        }
    };
    let id = config.id;
    let result = raftka_node::run(config, listener, shutdown_signal(), |addr| {
        println!("ready addr={addr} id={id}");
    })
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raftka-node: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
