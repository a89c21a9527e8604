//! The `troupe` binary: command line, signals, and the exit code.
//! Everything else lives in the library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use troupe::control::{Control, PidFile};

/// A server allocates per request and frees on another connection's
/// turn; mimalloc's per-thread free lists cost less than glibc's arenas
/// there (BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOC: troupe::allocator::Allocator = troupe::allocator::Allocator;

/// An nginx-class HTTP server whose every part is a supervised actor.
#[derive(Debug, Parser)]
#[command(name = "troupe", version, about)]
struct Cli {
    /// The configuration file.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        default_value = "config.ron"
    )]
    config: PathBuf,
    /// Check the configuration and exit: 0 if it is good, 1 if not.
    /// Module libraries are loaded (not run) to check their ABI.
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Signal the running server (found through the config's `pid_file`):
    /// `reload` reload the config (checked here first), `quit` graceful
    /// shutdown, `stop` fast shutdown, `reopen` reopen the log files.
    #[arg(short = 's', long = "signal", value_name = "SIGNAL")]
    signal: Option<SignalArg>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SignalArg {
    Reload,
    Quit,
    Stop,
    Reopen,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ModuleAction {
    Reload,
    Enable,
    Disable,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Reload, enable or disable one module of the running server, through
    /// its admin API (the config's `admin` address and token).
    Module {
        /// What to do.
        action: ModuleAction,
        /// The module's name.
        name: String,
    },
    /// Write `.zst`, `.br` and `.gz` siblings of the text files under DIR
    /// at high levels, for a `Static` route with `precompressed`. Files
    /// whose type is not compressible, smaller than `--min-length`, or
    /// whose coding does not gain are skipped; siblings newer than their
    /// file are kept, so running it again writes only what changed.
    #[cfg(feature = "handler-static")]
    Precompress {
        /// The directory (walked recursively).
        dir: PathBuf,
        /// Files smaller than this are left alone.
        #[arg(long, default_value_t = 256)]
        min_length: u64,
    },
    /// Host one `Process`-isolated module; the server starts this itself,
    /// with a unix socket as stdin.
    #[command(hide = true)]
    ModuleHost {
        /// The module library.
        library: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::ModuleHost { library }) = &cli.command {
        return troupe::modules::process::child::main(library);
    }
    #[cfg(feature = "handler-static")]
    if let Some(Command::Precompress { dir, min_length }) = &cli.command {
        let types = troupe::compress::TypeList::default_list();
        return match troupe::compress::precompress(dir, &types, *min_length) {
            Ok(s) => {
                println!(
                    "troupe: precompressed {}: {} written, {} up to date, {} not smaller, {} files skipped",
                    dir.display(),
                    s.written,
                    s.fresh,
                    s.no_gain,
                    s.skipped
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("troupe: precompress {}: {err}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Module { action, name }) = &cli.command {
        return module(&cli.config, *action, name);
    }
    if let Some(sig) = cli.signal {
        let what = match sig {
            SignalArg::Reload => {
                // A config the server would refuse is reported here, where
                // the operator is looking, not only in the server's log.
                if let Err(err) = troupe::config::load(&cli.config) {
                    eprintln!("troupe: {err}");
                    eprintln!("troupe: not reloading; the running server keeps its config");
                    return ExitCode::FAILURE;
                }
                Control::Reload
            }
            SignalArg::Quit => Control::Quit,
            SignalArg::Stop => Control::Stop,
            SignalArg::Reopen => Control::Reopen,
        };
        return match troupe::control::send(&cli.config, what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("troupe: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let loaded = match troupe::config::load(&cli.config) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("troupe: {err}");
            if cli.test {
                eprintln!(
                    "troupe: configuration file {} test failed",
                    cli.config.display()
                );
            }
            return ExitCode::FAILURE;
        }
    };
    if cli.test {
        eprintln!(
            "troupe: the configuration file {} syntax is ok",
            cli.config.display()
        );
        let broken = troupe::modules::probe(&loaded.modules, &loaded.uses);
        if !broken.is_empty() {
            for why in broken {
                eprintln!("troupe: {why}");
            }
            eprintln!(
                "troupe: configuration file {} test failed",
                cli.config.display()
            );
            return ExitCode::FAILURE;
        }
        eprintln!(
            "troupe: configuration file {} test is successful",
            cli.config.display()
        );
        return ExitCode::SUCCESS;
    }
    troupe::observe::logging::init_error_log(&loaded.config.log.level);
    match run(loaded) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("troupe: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `troupe module ACTION NAME`: one admin API call; prints its answer.
fn module(config: &std::path::Path, action: ModuleAction, name: &str) -> ExitCode {
    let action = match action {
        ModuleAction::Reload => "reload",
        ModuleAction::Enable => "enable",
        ModuleAction::Disable => "disable",
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("troupe: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(troupe::control::module(config, name, action)) {
        Ok((status, body)) if status.is_success() => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("troupe: module {action} {name}: {status}: {body}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("troupe: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(loaded: troupe::config::Loaded) -> anyhow::Result<ExitCode> {
    let workers = loaded
        .config
        .workers
        .map(usize::from)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("troupe-worker")
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let listeners = troupe::bind_all(&loaded.config.listen)?;
        let pid_file = loaded.config.pid_file.as_ref().map(|p| loaded.base.join(p));
        let mut running = troupe::start(loaded, listeners).await?;
        // Handlers first: SIGHUP's default action ends the process, and
        // `troupe -s` signals as soon as it can read the pid file.
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut quit = signal(SignalKind::quit())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        let mut hup = signal(SignalKind::hangup())?;
        let _pid = match pid_file {
            Some(path) => Some(
                PidFile::create(path.clone())
                    .with_context(|| format!("cannot write the pid file {}", path.display()))?,
            ),
            None => None,
        };
        tracing::info!(workers, "troupe started");
        troupe::notify::ready("serving");
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: graceful shutdown"); break }
                _ = int.recv() => { tracing::info!("SIGINT: graceful shutdown"); break }
                _ = quit.recv() => { tracing::info!("SIGQUIT: graceful shutdown"); break }
                _ = usr1.recv() => match running.reopen_logs() {
                    Ok(()) => tracing::info!("SIGUSR1: log files reopened"),
                    Err(e) => tracing::error!(error = %e, "SIGUSR1: cannot reopen the log files; still writing to the old ones"),
                },
                _ = hup.recv() => {
                    // The outcomes are logged by the config and the
                    // certificate actors. The certificates are read again
                    // even when the config is refused (a bad config must
                    // not hold back a renewed certificate), and after an
                    // applied one find nothing new.
                    troupe::notify::reloading();
                    let outcome = running.reload_config(troupe::Trigger::Signal).await;
                    let _ = running.reload_certs(troupe::Trigger::Signal).await;
                    troupe::notify::ready(if outcome.is_ok() { "serving; reload applied" } else { "serving; reload refused" });
                }
                _ = usr2.recv() => {
                    let tried = running.reload_changed().await;
                    if tried.is_empty() {
                        tracing::info!("SIGUSR2: no module file changed");
                    }
                    for (module, result) in tried {
                        match result {
                            Ok(()) => tracing::info!(module, "SIGUSR2: module reloaded (its file changed)"),
                            Err(error) => tracing::warn!(module, error, "SIGUSR2: reload failed; the old instance keeps serving"),
                        }
                    }
                }
                _ = running.stopped() => anyhow::bail!("the supervision tree stopped"),
            }
        }
        troupe::notify::stopping();
        // A second signal skips the drain.
        tokio::select! {
            _ = running.shutdown() => Ok(ExitCode::SUCCESS),
            _ = term.recv() => { tracing::warn!("second signal: fast shutdown"); Ok(ExitCode::SUCCESS) }
            _ = int.recv() => { tracing::warn!("second signal: fast shutdown"); Ok(ExitCode::SUCCESS) }
            _ = quit.recv() => { tracing::warn!("second signal: fast shutdown"); Ok(ExitCode::SUCCESS) }
        }
    })
}
