//! The process's open-file limit (`RLIMIT_NOFILE`): every connection is a file, so a
//! `server.max_connections` above it cannot be reached; accepting then fails with
//! `EMFILE` for everyone, established clients' upstream connections included.
//!
//! `framex run` raises the soft limit to the hard one at start-up, as nginx's
//! `worker_rlimit_nofile` does; the server warns when `max_connections` still
//! exceeds it.

/// The soft and hard open-file limits, where the platform has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The limit in force.
    pub soft: u64,
    /// The ceiling an unprivileged process may raise it to.
    pub hard: u64,
}

/// The current limits (`None` off Unix or when the call fails).
// `rlim_t` is `u64` on Linux but not on every Unix: the conversion is not useless there.
#[allow(clippy::useless_conversion)]
pub fn limits() -> Option<OpenFiles> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own and reads nothing else.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        ok.then_some(OpenFiles {
            soft: u64::from(limit.rlim_cur),
            hard: u64::from(limit.rlim_max),
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft limit to the hard one; returns the limits in force afterwards.
///
/// # Errors
/// The OS refused (the limits stay as they were).
pub fn raise_to_hard_limit() -> std::io::Result<Option<OpenFiles>> {
    #[cfg(unix)]
    {
        let Some(current) = limits() else {
            return Ok(None);
        };
        if current.soft < current.hard {
            let limit = libc::rlimit {
                rlim_cur: current.hard as libc::rlim_t,
                rlim_max: current.hard as libc::rlim_t,
            };
            // SAFETY: setrlimit reads the struct we own.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(limits())
    }
    #[cfg(not(unix))]
    {
        Ok(None)
    }
}

/// Files kept aside from client connections by the default `max_connections`: the
/// listener, logs, DNS, configuration and certificate reads.
const RESERVED_FILES: u64 = 64;

/// Most client connections served by default, whatever the open-file limit.
const DEFAULT_MAX_CONNECTIONS: u64 = 25_000;

/// The `max_connections` used when the config sets none: half of what the open-file
/// limit leaves after [`RESERVED_FILES`] (a proxied client connection may hold an
/// upstream connection as well), at least 1, at most 25,000; 25,000 where the limit
/// cannot be read. A default that the process cannot reach would make every start warn.
pub fn default_max_connections(limits: Option<OpenFiles>) -> usize {
    let Some(limits) = limits else {
        return DEFAULT_MAX_CONNECTIONS as usize;
    };
    let usable = limits.soft.saturating_sub(RESERVED_FILES) / 2;
    usize::try_from(usable.clamp(1, DEFAULT_MAX_CONNECTIONS)).unwrap_or(1)
}

/// Connections each of `workers` accepts so that together they serve `total`
/// (actix-web's limit is per worker): `total / workers`, rounded up, at least 1.
pub fn per_worker(total: usize, workers: usize) -> usize {
    total.div_ceil(workers.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default leaves room for upstream connections and never exceeds the limit.
    #[test]
    fn default_follows_the_file_limit() {
        let at = |soft| default_max_connections(Some(OpenFiles { soft, hard: soft }));
        assert_eq!(at(20_000), 9_968);
        assert_eq!(at(1_024), 480);
        assert_eq!(at(10), 1);
        assert_eq!(at(1 << 20), 25_000);
        assert_eq!(default_max_connections(None), 25_000);
        for soft in [100, 1_024, 4_096, 65_536] {
            assert!((at(soft) as u64) * 2 + RESERVED_FILES <= soft);
        }
    }

    /// The per-worker share covers the total and never drops to 0.
    #[test]
    fn per_worker_share_rounds_up() {
        assert_eq!(per_worker(25_000, 2), 12_500);
        assert_eq!(per_worker(25_000, 3), 8_334);
        assert_eq!(per_worker(1, 8), 1);
        assert_eq!(per_worker(5, 0), 5);
    }

    /// Raising to the hard limit leaves soft == hard, and never lowers anything.
    #[cfg(unix)]
    #[test]
    fn raising_reaches_the_hard_limit() {
        let before = limits().expect("getrlimit works");
        let after = raise_to_hard_limit().unwrap().unwrap();
        assert_eq!(after.soft, after.hard);
        assert!(after.soft >= before.soft);
    }
}
