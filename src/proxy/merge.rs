//! Merging what every upstream URL published into proxied routes: one route per
//! operation, served by the pool of the URLs that publish it with the same signature.
//! A pure function of its inputs, so it is tested without a network.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use framex_actors::{ApiKey, ApiSpec};

/// One proxied route: its signature and the upstreams (indexes, in config order)
/// whose pool serves it.
pub type MergedRoute = (Arc<ApiSpec>, Vec<usize>);

/// The merge of one publication.
#[derive(Debug, Default)]
pub struct Merged {
    /// The routes, in the order first seen.
    pub routes: Vec<MergedRoute>,
    /// Operations an upstream publishes with another signature than the first URL
    /// publishing them (upstream index, key): not pooled with it.
    pub conflicts: BTreeSet<(usize, ApiKey)>,
}

/// Merges `published[i]` (the operations upstream `i` last published; `None` when it
/// was never discovered) and the configured proxy `functions` (upstream index, spec),
/// which are always there and never shadow a discovered operation.
pub fn merge(published: &[Option<Vec<Arc<ApiSpec>>>], functions: &[(usize, Arc<ApiSpec>)]) -> Merged {
    let mut merged = Merged::default();
    let mut index: HashMap<&ApiKey, usize> = HashMap::new();
    for (i, operations) in published.iter().enumerate() {
        for spec in operations.iter().flatten() {
            match index.get(&spec.key) {
                None => {
                    index.insert(&spec.key, merged.routes.len());
                    merged.routes.push((spec.clone(), vec![i]));
                }
                Some(&at) if merged.routes[at].0.same_signature(spec) => merged.routes[at].1.push(i),
                Some(_) => {
                    merged.conflicts.insert((i, spec.key.clone()));
                }
            }
        }
    }
    for (at, spec) in functions {
        if !index.contains_key(&spec.key) {
            index.insert(&spec.key, merged.routes.len());
            merged.routes.push((spec.clone(), vec![*at]));
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use framex_actors::{Method, Param, ParamLocation, ValueKind};
    use serde_json::Value;

    fn op(path: &str, param: Option<ValueKind>) -> Arc<ApiSpec> {
        let mut spec = ApiSpec::new(ApiKey::http(Method::GET, path));
        if let Some(kind) = param {
            spec.params.push(Param {
                name: "q".to_owned(),
                location: ParamLocation::Query,
                kind,
                items: None,
                required: true,
                schema: Value::Null,
                canonical: None,
            });
        }
        Arc::new(spec)
    }

    fn members(merged: &Merged, path: &str) -> Vec<usize> {
        merged
            .routes
            .iter()
            .find(|(spec, _)| spec.key == ApiKey::http(Method::GET, path))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    #[test]
    fn urls_publishing_the_same_operation_pool_together() {
        let a = Some(vec![op("/x", None), op("/only-a", None)]);
        let b = Some(vec![op("/x", None)]);
        let c = None; // never discovered
        let merged = merge(&[a, b, c], &[]);
        assert_eq!(members(&merged, "/x"), vec![0, 1]);
        assert_eq!(members(&merged, "/only-a"), vec![0]);
        assert!(merged.conflicts.is_empty());
    }

    #[test]
    fn another_signature_is_a_conflict_not_a_pool_member() {
        let a = Some(vec![op("/x", Some(ValueKind::Integer))]);
        let b = Some(vec![op("/x", Some(ValueKind::String))]);
        let merged = merge(&[a, b], &[]);
        assert_eq!(members(&merged, "/x"), vec![0]);
        assert_eq!(
            merged.conflicts.into_iter().collect::<Vec<_>>(),
            vec![(1, ApiKey::http(Method::GET, "/x"))]
        );
    }

    #[test]
    fn proxy_functions_are_always_there_and_never_shadow_discovered_operations() {
        let function = Arc::new(ApiSpec::new(ApiKey::Function("m.f".to_owned())));
        let clash = Arc::new(ApiSpec::new(ApiKey::http(Method::GET, "/x")));
        let merged = merge(&[None, Some(vec![op("/x", None)])], &[(0, function), (0, clash)]);
        assert_eq!(merged.routes.len(), 2);
        assert_eq!(merged.routes[1].0.key, ApiKey::Function("m.f".to_owned()));
        assert_eq!(merged.routes[1].1, vec![0]);
        assert_eq!(members(&merged, "/x"), vec![1], "the discovered operation keeps its key");
    }
}
