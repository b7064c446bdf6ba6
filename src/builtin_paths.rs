//! The paths framex-rs answers itself on `GET` (a leaf module: the HTTP surface serves
//! them, the proxy leaves an upstream's own operations on them out).

/// Every path a `GET` of which framex-rs answers itself, whatever the route table
/// holds: probes, documents, docs pages (and the docs' plugin views) and status pages.
/// (The docs' action-button paths, `/docs/action-buttons/{i}/invoke|open`, are
/// framex-rs's too, for `POST` and `GET`.)
pub const BUILTIN_GETS: [&str; 13] = [
    "/health",
    "/ping",
    "/version",
    "/ready",
    "/api/v1/openapi.json",
    "/docs",
    "/redoc",
    "/docs/plugin-config",
    "/docs/plugin-release",
    "/api/v1/proxy/upstreams",
    "/api/v1/proxy/migration",
    "/api/v1/limits",
    "/metrics",
];

/// Where the docs login ends a session (`POST`) and says so (`GET`), when
/// `[auth.oauth]` is set (FrameX-kit's path).
pub const LOGOUT_PATH: &str = "/auth/logout";

/// Whether framex-rs answers `method path` itself (an upstream operation there would
/// never be reached).
pub fn is_builtin(method: &str, path: &str) -> bool {
    // `HEAD` is answered as `GET` (see `http::phases`).
    (method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")) && BUILTIN_GETS.contains(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only `GET`s (and `HEAD`s) of the built-in paths are taken; other methods and
    /// paths go on.
    #[test]
    fn only_gets_of_builtin_paths() {
        assert!(is_builtin("GET", "/health") && is_builtin("get", "/version") && is_builtin("HEAD", "/ready"));
        assert!(!is_builtin("POST", "/health"));
        assert!(!is_builtin("GET", "/healthz") && !is_builtin("GET", "/api/v1/health"));
    }
}
