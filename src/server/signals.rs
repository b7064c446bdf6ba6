//! Signals of a server run from the command line: SIGHUP reloads the configuration,
//! SIGTERM and SIGINT drain (`/ready` answers 503, no new connections, requests in
//! flight finish within `shutdown_timeout`) and stop.

use crate::config::Config;

use super::{ReloadError, Running};

impl Running {
    /// Serves until SIGINT/SIGTERM, reloading on every SIGHUP with the configuration
    /// `load` gives (the same file and overrides as at start); then drains in-flight
    /// requests and returns. A configuration that does not load changes nothing and
    /// is logged with its reason.
    ///
    /// # Errors
    /// The server's own I/O error.
    pub async fn until_signal<F>(self, load: F) -> std::io::Result<()>
    where
        F: Fn() -> Result<Config, String>,
    {
        wait_for_stop(&self, &load).await;
        self.start_draining();
        log::info!("shutting down: draining in-flight requests");
        // WebSocket tunnels live through the drain period, less a second in which they
        // close with 1001 (going away) before the server cuts what is left.
        let (closing, drain) = (self.closing.clone(), self.shutdown_timeout);
        actix_rt::spawn(async move {
            actix_rt::time::sleep(drain.saturating_sub(std::time::Duration::from_secs(1))).await;
            let _ = closing.send(true);
        });
        let proxy = self.proxy();
        self.handle.stop(true).await;
        let result = self.task.await.unwrap_or(Ok(()));
        if let Some(proxy) = proxy {
            proxy.stop().await;
        }
        result
    }
}

/// Reloads on SIGHUP until SIGTERM or SIGINT comes.
#[cfg(unix)]
async fn wait_for_stop<F>(running: &Running, load: &F)
where
    F: Fn() -> Result<Config, String>,
{
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => {
                log::info!("SIGHUP: reloading the configuration");
                match load() {
                    Ok(config) => {
                        running.reload(config).await;
                    }
                    Err(reason) => log::error!("{}", ReloadError::Config(reason)),
                }
            }
        }
    }
}

/// Without SIGHUP, only an interrupt stops the server.
#[cfg(not(unix))]
async fn wait_for_stop<F>(_: &Running, _: &F)
where
    F: Fn() -> Result<Config, String>,
{
    let _ = tokio::signal::ctrl_c().await;
}
