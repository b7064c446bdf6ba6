//! The `Authorization` value each endpoint of a pool is sent: chosen once the
//! endpoint is picked, so that a pool of several URLs gives each URL its own key and
//! none another's. Built when routes are published (never per request); sending one
//! is a reference-count increment.

use std::fmt;
use std::sync::Arc;

use http::header::HeaderValue;

/// Keys by endpoint index (the order of the pool's `endpoints`); `None` for an
/// endpoint sent no key. Never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EndpointKeys(Option<Arc<[Option<HeaderValue>]>>);

impl EndpointKeys {
    /// The keys of a pool's endpoints, in order (marked sensitive, so that HTTP/2
    /// header compression never indexes them). No key at all: [`EndpointKeys::default`].
    pub fn new(keys: Vec<Option<HeaderValue>>) -> Self {
        if keys.iter().all(Option::is_none) {
            return EndpointKeys(None);
        }
        let keys: Vec<Option<HeaderValue>> = keys
            .into_iter()
            .map(|key| {
                key.map(|mut k| {
                    k.set_sensitive(true);
                    k
                })
            })
            .collect();
        EndpointKeys(Some(keys.into()))
    }

    /// The key sent to endpoint `index`, if any.
    pub fn for_endpoint(&self, index: usize) -> Option<&HeaderValue> {
        self.0.as_ref()?.get(index)?.as_ref()
    }

    /// Whether no endpoint is sent a key.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Debug for EndpointKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.as_ref().map_or(0, |k| k.iter().flatten().count());
        write!(f, "<{count} keys>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_endpoint_gets_its_own_key_and_none_is_printed() {
        let keys = EndpointKeys::new(vec![Some(HeaderValue::from_static("a")), None]);
        assert_eq!(keys.for_endpoint(0).map(HeaderValue::as_bytes), Some(&b"a"[..]));
        assert_eq!(keys.for_endpoint(1), None);
        assert_eq!(keys.for_endpoint(2), None);
        assert!(keys.for_endpoint(0).is_some_and(HeaderValue::is_sensitive));
        assert_eq!(format!("{keys:?}"), "<1 keys>");
        assert!(EndpointKeys::new(vec![None, None]).is_empty());
    }
}
