//! The one Redis client of framex-rs, for the features that share state across a
//! fleet (`[limits] backend = "redis"`, `[cache] mode = "redis"`): one lazily made,
//! pooled connection manager per store, with short timeouts, the atomic scripts the
//! limiters run (one round trip per call), and plain `GET` / `SET` for the cache.
//!
//! A Redis that cannot be reached is an error ([`StoreError`]) for the caller to
//! apply its policy to; after a failed connection attempt the next one waits a
//! second, so that a dead Redis costs a request nothing but a lock and a clock read.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a connection attempt or a reply may take.
const TIMEOUT: Duration = Duration::from_millis(500);
/// How long after a failed connection attempt the next one is made.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why Redis did not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL")]
    Url(#[source] redis::RedisError),
    /// No connection (a recent attempt failed, or this one did).
    #[error("Redis unavailable")]
    Unavailable(#[source] Option<redis::RedisError>),
    /// A command failed or timed out.
    #[error("Redis command failed")]
    Command(#[source] redis::RedisError),
}

/// What Redis decided of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It may go (and holds a slot, when the call asked for one).
    Allowed,
    /// Over the rate.
    RateLimited,
    /// Every slot is taken.
    Busy,
}

/// Redis's answer to [`RedisStore::limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitReply {
    /// The decision.
    pub outcome: Outcome,
    /// Requests left at once after this one (rate only).
    pub remaining: u64,
    /// Microseconds until the next request would be allowed (rate-limited) or until
    /// the bucket is full again (allowed).
    pub wait_us: u64,
}

/// What [`RedisStore::limit`] asks: a GCRA step (interval and burst tolerance, µs;
/// interval 0 for none) and a slot of `slots` (0 for none), the slot counter expiring
/// after `expiry_ms` untouched (a safety net for instances that die holding slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitAsk {
    /// GCRA emission interval, µs (0: no rate).
    pub interval_us: u64,
    /// GCRA burst tolerance, µs.
    pub tolerance_us: u64,
    /// Slots (0: no concurrency limit).
    pub slots: u64,
    /// How long a slot lives when nobody gives it back (its holder died, Redis was
    /// unreachable when it ended), ms.
    pub expiry_ms: u64,
    /// This request's slot, unique in the fleet (given back by [`RedisStore::release`]).
    pub member: u64,
}

/// GCRA on Redis's clock (KEYS[1]: theoretical arrival time, µs) and the open
/// requests (KEYS[2]: a sorted set of slot ids by when they were taken, ms; a slot
/// older than ARGV[4] ms is dropped, so one never given back expires on its own
/// however busy the key stays); a request refused changes neither.
/// Returns {0 = allowed, 1 = rate-limited, 2 = busy; remaining; wait_us}.
const LIMIT: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local slots = tonumber(ARGV[3])
local now, new
if interval > 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local tat = tonumber(redis.call('GET', KEYS[1]) or now)
  if tat < now then tat = now end
  new = tat + interval
  if new - now > tolerance then
    return {1, 0, new - now - tolerance}
  end
end
if slots > 0 then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms - tonumber(ARGV[4]))
  if redis.call('ZCARD', KEYS[2]) >= slots then
    return {2, 0, 0}
  end
  redis.call('ZADD', KEYS[2], now_ms, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
if interval > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
  return {0, math.floor((tolerance - (new - now)) / interval), new - now}
end
return {0, 0, 0}
";

/// Gives back slot ARGV[1] of KEYS[1] (once: a second release finds nothing).
const RELEASE: &str = r"
return redis.call('ZREM', KEYS[1], ARGV[1])
";

/// One Redis server, connected on first use.
pub struct RedisStore {
    client: redis::Client,
    state: Mutex<Connection>,
    limit: redis::Script,
    release: redis::Script,
}

#[derive(Default)]
struct Connection {
    manager: Option<ConnectionManager>,
    failed_at: Option<Instant>,
}

impl RedisStore {
    /// A store for `url` (nothing is connected yet).
    ///
    /// # Errors
    /// A URL the client refuses.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Ok(RedisStore {
            client: redis::Client::open(url).map_err(StoreError::Url)?,
            state: Mutex::new(Connection::default()),
            limit: redis::Script::new(LIMIT),
            release: redis::Script::new(RELEASE),
        })
    }

    /// The connection, made now if there is none and no attempt failed in the last
    /// second.
    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        {
            let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(manager) = &state.manager {
                return Ok(manager.clone());
            }
            if state.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
                return Err(StoreError::Unavailable(None));
            }
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(1);
        let made = tokio::time::timeout(TIMEOUT * 2, ConnectionManager::new_with_config(self.client.clone(), config)).await;
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match made {
            Ok(Ok(manager)) => {
                state.failed_at = None;
                Ok(state.manager.get_or_insert(manager).clone())
            }
            Ok(Err(e)) => {
                state.failed_at = Some(Instant::now());
                Err(StoreError::Unavailable(Some(e)))
            }
            Err(_) => {
                state.failed_at = Some(Instant::now());
                Err(StoreError::Unavailable(None))
            }
        }
    }

    /// Runs `script` on `keys` with `args`, within the timeout.
    async fn run<T: redis::FromRedisValue>(&self, script: &redis::Script, keys: &[&str], args: &[u64]) -> Result<T, StoreError> {
        let mut conn = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        self.bounded(invocation.invoke_async(&mut conn)).await
    }

    /// One atomic decision (one round trip): a GCRA step on `rate_key` and a slot of
    /// `slot_key`, as `ask` says.
    ///
    /// # Errors
    /// Redis unavailable or failing.
    pub async fn limit(&self, rate_key: &str, slot_key: &str, ask: LimitAsk) -> Result<LimitReply, StoreError> {
        let args = [ask.interval_us, ask.tolerance_us, ask.slots, ask.expiry_ms, ask.member];
        let (outcome, remaining, wait_us): (i64, i64, i64) = self.run(&self.limit, &[rate_key, slot_key], &args).await?;
        Ok(LimitReply {
            outcome: match outcome {
                0 => Outcome::Allowed,
                1 => Outcome::RateLimited,
                _ => Outcome::Busy,
            },
            remaining: remaining.max(0).unsigned_abs(),
            wait_us: wait_us.max(0).unsigned_abs(),
        })
    }

    /// The bytes under `key`, if any.
    ///
    /// # Errors
    /// Redis unavailable or failing.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.connection().await?;
        self.bounded(redis::cmd("GET").arg(key).query_async(&mut conn)).await
    }

    /// Stores `value` under `key`, expiring after `ttl` seconds (`None`: never).
    ///
    /// # Errors
    /// Redis unavailable or failing.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Option<u64>) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("EX").arg(ttl);
        }
        self.bounded(cmd.query_async(&mut conn)).await
    }

    /// A command's reply within the timeout.
    async fn bounded<T>(&self, reply: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(TIMEOUT * 2, reply).await {
            Ok(reply) => reply.map_err(StoreError::Command),
            Err(_) => Err(StoreError::Unavailable(None)),
        }
    }

    /// Gives back slot `member` of `key` (a failure leaves it to its expiry).
    pub async fn release(&self, key: &str, member: u64) {
        if self.run::<i64>(&self.release, &[key], &[member]).await.is_err() {
            log::debug!("limits: a concurrency slot was not given back to Redis; it expires");
        }
    }
}
