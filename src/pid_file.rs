//! `server.pid_file`: where `framex run` writes its process id, so that
//! `framex reload` can send it SIGHUP (as `nginx -s reload` finds nginx).

use std::path::{Path, PathBuf};

use crate::config::Config;

/// Why the pid file could not be written, read or used.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// The config names no pid file.
    #[error("server.pid_file is not set in {origin}: framex reload finds the running instance through it")]
    NotConfigured {
        /// The config file (or "default config").
        origin: String,
    },
    /// The file could not be written or read.
    #[error("pid file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a process id.
    #[error("pid file {path} does not hold a process id")]
    Garbled {
        /// The file.
        path: PathBuf,
    },
    /// The process the file names is not a framex (a stale file whose id was reused).
    #[error("process {pid} (from {path}) is {name:?}, not framex: a stale pid file? Not signalled")]
    NotFramex {
        /// The process id read.
        pid: i32,
        /// The file.
        path: PathBuf,
        /// What the process is called.
        name: String,
    },
    /// The process could not be signalled (gone, or not ours).
    #[error("cannot signal process {pid} (from {path}): {source}")]
    Signal {
        /// The process id read.
        pid: i32,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The pid file of a running server, removed when dropped.
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes this process's id to `server.pid_file`, when set.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(config: &Config) -> Result<Option<PidFile>, PidFileError> {
        let Some(path) = config.server.pid_file.as_deref().map(PathBuf::from) else {
            return Ok(None);
        };
        std::fs::write(&path, format!("{}\n", std::process::id())).map_err(|source| PidFileError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Some(PidFile(path)))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sends SIGHUP to the process whose id `server.pid_file` holds; returns that id.
///
/// # Errors
/// No pid file configured, unreadable or garbled, or the process cannot be signalled.
pub fn signal_reload(config: &Config) -> Result<i32, PidFileError> {
    let path = config.server.pid_file.as_deref().map(PathBuf::from).ok_or_else(|| {
        PidFileError::NotConfigured {
            origin: config
                .source
                .as_deref()
                .map_or_else(|| "default config".to_owned(), |p| p.display().to_string()),
        }
    })?;
    let pid = read_pid(&path)?;
    // A pid file left by a crash may name a process that reused the id: never send it
    // a signal meant for framex (Linux tells the name; elsewhere it is trusted).
    if let Ok(name) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        let name = name.trim().to_owned();
        if !name.starts_with("framex") {
            return Err(PidFileError::NotFramex { pid, path, name });
        }
    }
    // SAFETY: kill(2) with a plain signal number has no memory effects.
    let sent = unsafe { libc::kill(pid, libc::SIGHUP) };
    if sent != 0 {
        return Err(PidFileError::Signal {
            pid,
            path,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(pid)
}

fn read_pid(path: &Path) -> Result<i32, PidFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PidFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| PidFileError::Garbled { path: path.to_owned() })
}
