//! The signed cookies of the docs login: the session (FrameX-kit's `framex_token`) and
//! the login's state (`framex_oauth_state`), both JWTs signed with `jwt_secret` by the
//! one algorithm configured. A token of another algorithm (`none` included), with a
//! bad signature, expired, or missing a claim is refused.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SecureRandom as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What the session cookie says (FrameX-kit's claims): who logged in, and the id of
/// the session kept in memory (the one thing checked besides the signature).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SessionClaims {
    /// `Welcome <username>`.
    pub message: String,
    /// The provider's username.
    pub username: String,
    /// The provider's email, when it gave one.
    pub email: Option<String>,
    /// `[auth.oauth] provider`.
    pub oauth_provider: String,
    /// The session's id in [`super::sessions::Sessions`].
    pub session_id: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// What the state cookie says: the `state` sent to the provider, where to go after
/// the login, and when the attempt expires.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StateClaims {
    /// The random `state` the provider must send back.
    pub state: String,
    /// A local path (and query) to land on after the login.
    pub redirect_url: String,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Signs and checks the login's tokens with `jwt_secret` and `jwt_algorithm`.
pub(super) struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
}

impl Signer {
    /// A signer for `algorithm` (`HS256`, `HS384` or `HS512`) keyed by `secret`.
    ///
    /// # Errors
    /// Another algorithm (the config check refuses it first).
    pub fn new(secret: &str, algorithm: &str) -> Result<Signer, String> {
        let algorithm = match algorithm {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            other => return Err(format!("auth.oauth.jwt_algorithm '{}' is not supported", other.escape_default())),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        Ok(Signer {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            header: Header::new(algorithm),
            validation,
        })
    }

    /// `claims` signed.
    ///
    /// # Errors
    /// The claims could not be serialized (not with the types above).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding).map_err(|e| format!("signing failed: {e}"))
    }

    /// The claims of `token` when its signature, algorithm and expiry are good and it
    /// has every claim of `T`; `None` otherwise (why is nobody's business but ours).
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Option<T> {
        match jsonwebtoken::decode::<T>(token, &self.decoding, &self.validation) {
            Ok(data) => Some(data.claims),
            Err(e) => {
                log::debug!("docs login: token refused: {e}");
                None
            }
        }
    }
}

/// 32 random bytes from the system's generator, base64url without padding (as
/// Python's `token_urlsafe(32)`): the login's `state` and the session ids.
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the epoch, now.
pub(super) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn state(exp: i64) -> StateClaims {
        StateClaims { state: "s".into(), redirect_url: "/docs".into(), exp }
    }

    /// A token signed and checked by the same signer passes; expired, tampered, signed
    /// with another secret or algorithm, or unsigned (`alg: none`), it does not.
    #[test]
    fn only_good_tokens_pass() {
        let signer = Signer::new(SECRET, "HS256").unwrap();
        let good = signer.sign(&state(now() + 60)).unwrap();
        assert_eq!(signer.verify::<StateClaims>(&good).unwrap().redirect_url, "/docs");
        assert!(signer.verify::<StateClaims>(&signer.sign(&state(now() - 1)).unwrap()).is_none(), "expired");
        let other = Signer::new("another secret, 32 bytes at least!", "HS256").unwrap();
        assert!(signer.verify::<StateClaims>(&other.sign(&state(now() + 60)).unwrap()).is_none(), "forged");
        let hs512 = Signer::new(SECRET, "HS512").unwrap();
        assert!(signer.verify::<StateClaims>(&hs512.sign(&state(now() + 60)).unwrap()).is_none(), "algorithm");
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let payload = b64(&format!("{{\"state\":\"s\",\"redirect_url\":\"/docs\",\"exp\":{}}}", now() + 60));
        let unsigned = format!("{}.{payload}.", b64("{\"alg\":\"none\",\"typ\":\"JWT\"}"));
        assert!(signer.verify::<StateClaims>(&unsigned).is_none(), "alg none");
        let (head, rest) = good.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let changed = b64(&format!("{{\"state\":\"s\",\"redirect_url\":\"/redoc\",\"exp\":{}}}", now() + 60));
        assert!(signer.verify::<StateClaims>(&format!("{head}.{changed}.{signature}")).is_none(), "tampered");
        assert!(signer.verify::<SessionClaims>(&good).is_none(), "a state is not a session");
    }

    /// Random tokens are 43 URL-safe characters and differ.
    #[test]
    fn random_tokens_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
