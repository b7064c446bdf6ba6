//! The `framex` binary: parses the command line and runs the library.

use anyhow::Context as _;
use clap::Parser;
use framex::cli::{Cli, Command};
use framex::config::Config;
use framex::Framex;

/// jemalloc: the proxy allocates small, short-lived buffers and header maps on every
/// request. Measured with callgrind, it takes 9 % fewer instructions per proxied request
/// than glibc's malloc, and unlike mimalloc (62 MiB) it keeps the peak RSS of a 1 GiB
/// stream near glibc's (15 MiB vs 13 MiB).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Without `RUST_LOG`: our events at info; actix-server's start and stop chatter
/// (workers started, runtime found, service started) only when something is wrong.
const DEFAULT_LOG_FILTER: &str = "info,actix_server=warn";

/// Without `RUST_LOG`, with `[log] simple_log = false`: actix-server's chatter too.
const VERBOSE_LOG_FILTER: &str = "info";

/// Without `RUST_LOG`, for `framex routes`: the table is the output; only problems
/// (an upstream that cannot be read) are logged, before it.
const ROUTES_LOG_FILTER: &str = "warn";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_filter = match &cli.command {
        Command::Routes(_) => ROUTES_LOG_FILTER,
        // `[log] simple_log` is read before logging starts; a config that does not
        // load is reported below, by the load that counts.
        Command::Run(args) if Config::load(args.config.config.as_deref()).is_ok_and(|c| !c.log.simple_log) => {
            VERBOSE_LOG_FILTER
        }
        _ => DEFAULT_LOG_FILTER,
    };
    let logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
        .format_timestamp_millis()
        .build();
    log::set_max_level(logger.filter());
    // Records also go to Sentry once a server with `[sentry] enable_logs` starts.
    log::set_boxed_logger(Box::new(framex::sentry_logs::Forward::new(logger))).context("the logger is set once")?;
    match cli.command {
        Command::Check(args) => {
            let config = Config::load(args.config.as_deref())?;
            // This binary has the built-in plugins only.
            config.check_plugins_available(&[])?;
            print!("{}", framex::cli::check_summary(&config));
            println!("config is valid");
            Ok(())
        }
        Command::Routes(args) => {
            let config = Config::load(args.config.as_deref())?;
            actix_rt::System::new().block_on(async move {
                let listing = framex::cli::route_listing(&config).await?;
                print!("{}", listing.table);
                match listing.unreadable {
                    0 => Ok(()),
                    n => anyhow::bail!("{n} upstream URL(s) could not be read; their routes are missing above"),
                }
            })
        }
        Command::Reload(args) => {
            let config = Config::load(args.config.as_deref())?;
            let pid = framex::pid_file::signal_reload(&config)?;
            println!("asked process {pid} to reload its configuration");
            Ok(())
        }
        Command::Run(args) => {
            let mut config = Config::load(args.config.config.as_deref())?;
            args.apply(&mut config);
            config.check_plugins_available(&[])?;
            if config.test.silent {
                quiet_plugin_panics();
            }
            if let Some(warning) = framex::cli::unused_warning(&config) {
                log::warn!("{warning}");
            }
            if let Some(reason) = config.sentry.inactive_reason() {
                log::warn!("{reason}");
            }
            // SIGHUP reads the same file, the environment again, and these flags.
            let reload = move || -> Result<Config, String> {
                let mut config = Config::load(args.config.config.as_deref()).map_err(|e| e.to_string())?;
                args.apply(&mut config);
                config.check_plugins_available(&[]).map_err(|e| e.to_string())?;
                Ok(config)
            };
            let pid_file = framex::pid_file::PidFile::write(&config)?;
            // Every connection is a file: take what the hard limit allows (nginx's
            // worker_rlimit_nofile); the server warns if max_connections is still more.
            if let Err(e) = framex::open_files::raise_to_hard_limit() {
                log::warn!("cannot raise the open-file limit: {e}");
            }
            // Spans go to an OTLP collector when OTEL_EXPORTER_OTLP_ENDPOINT asks.
            let telemetry = framex::otel::init_from_env();
            let result = actix_rt::System::new().block_on(async move {
                let running = Framex::new(config)
                    .bind_and_start()
                    .await
                    .context("framex did not start")?;
                running.until_signal(reload).await?;
                drop(pid_file);
                Ok(())
            });
            if let Some(telemetry) = telemetry {
                telemetry.shutdown();
            }
            result
        }
    }
}

/// `[test] silent`: a plugin's panic is not printed on stderr by Rust's panic hook
/// (message, location, backtrace); it is still caught, answered as a 500 and logged
/// as one error line. Panics anywhere else are printed as always.
fn quiet_plugin_panics() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !framex::actors::in_plugin() {
            print(info);
        }
    }));
}
