//! Which key goes to which upstream URL: a URL's own `auth` (table form of
//! `proxy_urls`) beats `[plugins.proxy.auth]`; a global rule reaches a URL only for
//! the routes that URL serves, and its document request only when it is the one URL
//! configured (a key meant for one upstream must never reach another).

use super::{ProxyConfig, UpstreamConfig};

impl ProxyConfig {
    /// The key sent with `upstream`'s OpenAPI document request: the first key of its
    /// own rule covering `docs_path`, else of the global rule when `upstream` is the
    /// only URL configured.
    pub fn docs_key<'a>(&'a self, upstream: &'a UpstreamConfig) -> Option<&'a str> {
        let path = upstream.docs_path.as_str();
        upstream.auth.first_key_for(path).or_else(|| {
            (self.upstream_count() == 1)
                .then(|| self.auth.rules.first_key_for(path))
                .flatten()
        })
    }

    /// One warning per global rule that would have given its key with the documents
    /// of several URLs (with more than one URL configured, it gives none):
    /// `framex check` prints them and start-up logs them. Never names a key.
    pub fn docs_key_warnings(&self) -> Vec<String> {
        if self.upstream_count() < 2 {
            return Vec::new();
        }
        let upstreams = self.upstreams();
        let mut covered: Vec<(&str, Vec<&str>)> = Vec::new();
        for upstream in &upstreams {
            if upstream.auth.first_key_for(&upstream.docs_path).is_some() {
                continue;
            }
            if let Some(pattern) = self.auth.rules.pattern_for(&upstream.docs_path) {
                match covered.iter_mut().find(|(p, _)| *p == pattern) {
                    Some((_, urls)) => urls.push(upstream.url.as_str()),
                    None => covered.push((pattern, vec![upstream.url.as_str()])),
                }
            }
        }
        covered
            .into_iter()
            .map(|(pattern, urls)| {
                format!(
                    "global [plugins.proxy.auth] rule \"{}\" covers {} upstream URLs; its key is not sent for their \
                     documents; use proxy_urls.\"{}\".auth",
                    pattern.escape_default(),
                    urls.len(),
                    urls[0].escape_default()
                )
            })
            .collect()
    }

    /// How many upstream URLs are configured.
    fn upstream_count(&self) -> usize {
        match &self.proxy_urls {
            super::ProxyUrls::List(urls) => urls.len(),
            super::ProxyUrls::Table(table) => table.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn proxy(toml: &str) -> crate::config::ProxyConfig {
        let config: Config = toml::from_str(toml).expect("parses");
        config.plugins.proxy
    }

    #[test]
    fn own_keys_beat_global_ones_and_global_document_keys_need_a_single_url() {
        let two = proxy(
            "[plugins.proxy.auth]\nrules = { \"*\" = [\"global\"] }\n\
             [plugins.proxy.proxy_urls.\"http://a\"]\nauth = { \"/api/*\" = [\"a-key\", \"a-old\"] }\n\
             [plugins.proxy.proxy_urls.\"http://b\"]\n",
        );
        let ups = two.upstreams();
        assert_eq!(two.docs_key(&ups[0]), Some("a-key"));
        assert_eq!(two.docs_key(&ups[1]), None, "a global key covering two URLs goes to neither document");
        assert_eq!(ups[0].auth.key_or(&two.auth.rules, "/api/v1/x"), Some("a-key"));
        assert_eq!(ups[1].auth.key_or(&two.auth.rules, "/api/v1/x"), Some("global"));
        let warnings = two.docs_key_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("rule \"*\" covers 1 upstream URLs"), "{}", warnings[0]);
        assert!(!warnings[0].contains("global\"]") && !warnings[0].contains("a-key"));

        let one = proxy("[plugins.proxy]\nproxy_urls = [\"http://a\"]\n[plugins.proxy.auth]\nrules = { \"*\" = [\"g\"] }\n");
        assert_eq!(one.docs_key(&one.upstreams()[0]), Some("g"));
        assert!(one.docs_key_warnings().is_empty());
    }
}
