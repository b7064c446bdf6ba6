//! Which endpoint of a pool serves the next request.

use std::sync::Arc;

use super::EndpointStats;

/// How a pool spreads requests over its endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Balance {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// The less busy of two endpoints picked in turn (power of two choices).
    LeastInFlight,
}

/// As the config names them: `round_robin`, `least_inflight`.
impl std::fmt::Display for Balance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastInFlight => "least_inflight",
        })
    }
}

/// Picks an endpoint that is available and below `max_in_flight` (0 = no limit),
/// skipping `tried`, in turn from endpoint `turn` (modulo their number). When every
/// endpoint is ejected, ejected ones are used rather than none. `None` when every
/// candidate is saturated (or tried).
pub fn pick(
    balance: Balance,
    turn: usize,
    stats: &[Arc<EndpointStats>],
    max_in_flight: usize,
    tried: &[usize],
) -> Option<usize> {
    let n = stats.len();
    if n == 0 {
        return None;
    }
    let open = |i: usize| {
        !tried.contains(&i)
            && (max_in_flight == 0 || (stats[i].in_flight.get() as usize) < max_in_flight)
    };
    // At most one clock read per pick, none while no endpoint is marked ejected (a
    // success clears the mark).
    let now = super::health::Now::default();
    let healthy = |i: usize| stats[i].health.is_available_at(&now);
    let any_healthy = (0..n).any(|i| open(i) && healthy(i));
    let usable = |i: usize| open(i) && (!any_healthy || healthy(i));
    let first = (0..n).map(|k| turn.wrapping_add(k) % n).find(|&i| usable(i))?;
    if balance == Balance::LeastInFlight {
        let second = (1..n).map(|k| (first + k) % n).find(|&i| usable(i));
        if let Some(second) = second {
            let load = |i: usize| stats[i].in_flight.get() as usize;
            if load(second) < load(first) {
                return Some(second);
            }
        }
    }
    Some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n: usize) -> Vec<Arc<EndpointStats>> {
        (0..n).map(|_| Arc::default()).collect()
    }

    #[test]
    fn round_robin_visits_every_endpoint() {
        let s = stats(3);
        let picks: Vec<usize> = (0..6).map(|turn| pick(Balance::RoundRobin, turn, &s, 0, &[]).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn ejected_endpoints_get_no_traffic_unless_all_are_down() {
        let s = stats(2);
        s[0].health.record_failure();
        assert!((0..4).all(|turn| pick(Balance::RoundRobin, turn, &s, 0, &[]) == Some(1)));
        s[1].health.record_failure();
        assert!(pick(Balance::RoundRobin, 0, &s, 0, &[]).is_some(), "all down: still try");
    }

    #[test]
    fn saturated_and_tried_endpoints_are_skipped() {
        let s = stats(2);
        s[0].in_flight.set(5);
        assert_eq!(pick(Balance::RoundRobin, 0, &s, 5, &[]), Some(1));
        assert_eq!(pick(Balance::RoundRobin, 0, &s, 5, &[1]), None);
        assert_eq!(pick(Balance::LeastInFlight, 0, &s, 0, &[]), Some(1));
    }
}
