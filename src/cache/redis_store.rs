//! Redis mode: entries under `framex:cache:<key>` in a Redis server a fleet shares,
//! expiring through Redis (`SET … EX`). Only this module talks to Redis (one
//! multiplexed connection, reopened after an error; every call bounded in time).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

use super::{Blob, CacheError};

/// How long connecting or one command may take before the cache is bypassed.
const TIMEOUT: Duration = Duration::from_millis(500);

/// The Redis store.
pub struct RedisStore {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl RedisStore {
    /// A store for `url` (connected on first use).
    ///
    /// # Errors
    /// A URL the client does not accept.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(RedisStore { client: redis::Client::open(url)?, conn: tokio::sync::Mutex::new(None) })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, CacheError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT);
        let conn = tokio::time::timeout(TIMEOUT * 2, self.client.get_multiplexed_async_connection_with_config(&config))
            .await
            .map_err(|_| CacheError::Timeout)??;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the connection after an error, so the next call opens a new one.
    async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    async fn run<T>(&self, call: impl AsyncFnOnce(MultiplexedConnection) -> redis::RedisResult<T>) -> Result<T, CacheError> {
        let conn = self.connection().await?;
        match tokio::time::timeout(TIMEOUT, call(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.reset().await;
                Err(e.into())
            }
            Err(_) => {
                self.reset().await;
                Err(CacheError::Timeout)
            }
        }
    }

    /// The bytes under `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Blob>, CacheError> {
        let name = format!("framex:cache:{key}");
        let found: Option<Vec<u8>> = self.run(async move |mut c| c.get(name).await).await?;
        Ok(found.map(Blob::from))
    }

    /// Stores `bytes` under `key` for `ttl` seconds (`None`: no expiry).
    pub async fn set(&self, key: &str, bytes: Blob, ttl: Option<u64>) -> Result<(), CacheError> {
        let name = format!("framex:cache:{key}");
        let value = bytes.to_vec();
        self.run(async move |mut c| match ttl {
            Some(ttl) => c.set_ex::<_, _, ()>(name, value, ttl).await,
            None => c.set::<_, _, ()>(name, value).await,
        })
        .await
    }
}
