//! Who may post alarms: the secret token in the webhook URL (CloudAMQP's webhook
//! recipients carry no headers and no signature), compared in constant time, and a
//! throttle that answers 429 to addresses that keep guessing. The admin token (the admin
//! API, and the reads off loopback) is checked the same way, from the `Authorization`
//! header only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::header;
use governor::{DefaultKeyedRateLimiter, Quota};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The configured webhook token, kept only as its digest.
pub struct TokenCheck {
    digest: [u8; 32],
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck([redacted])")
    }
}

impl TokenCheck {
    pub fn new(token: &SecretString) -> Self {
        Self {
            digest: Sha256::digest(token.expose_secret().as_bytes()).into(),
        }
    }

    /// Whether the request carries the token, as `?token=` or `Authorization: Bearer`.
    /// Digests are compared in constant time, so neither the token's content nor its
    /// length leaks through timing.
    pub fn admits(&self, request: &HttpRequest) -> bool {
        presented_tokens(request)
            .iter()
            .any(|candidate| self.matches(candidate))
    }

    /// Whether the request carries the token in its `Authorization` header: as `Bearer`,
    /// or (`basic`) as the password of HTTP Basic with any user name, so a browser can
    /// open a page. Never from the query string: an admin token in a URL ends up in proxy
    /// logs and browser history.
    pub fn admits_header(&self, request: &HttpRequest, basic: bool) -> bool {
        let Some(value) = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            self.matches(rest)
        } else if basic && scheme.eq_ignore_ascii_case("basic") {
            basic_password(rest).is_some_and(|password| self.matches(&password))
        } else {
            false
        }
    }

    fn matches(&self, candidate: &str) -> bool {
        bool::from(
            Sha256::digest(candidate.as_bytes())
                .as_slice()
                .ct_eq(&self.digest),
        )
    }
}

/// The password of an HTTP Basic credential (`base64(user:password)`).
fn basic_password(encoded: &str) -> Option<String> {
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn presented_tokens(request: &HttpRequest) -> Vec<String> {
    let mut tokens = Vec::new();
    if let Ok(query) = actix_web::web::Query::<TokenQuery>::from_query(request.query_string())
        && let Some(token) = query.into_inner().token
    {
        tokens.push(token);
    }
    if let Some(value) = request.headers().get(header::AUTHORIZATION)
        && let Ok(value) = value.to_str()
        && let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
    {
        tokens.push(token.trim().to_owned());
    }
    tokens
}

/// Failed token attempts allowed per address before it is throttled: a burst of this many …
pub const AUTH_FAILURE_BURST: u32 = 20;
/// … refilled at this many per minute.
pub const AUTH_FAILURES_PER_MINUTE: u32 = 10;

/// Throttles addresses that keep sending wrong tokens: past the budget, their wrong tokens
/// answer 429 (uncounted) until the budget refills. The right token is still admitted (the
/// webhook checks it first: behind a reverse proxy every sender shares one address), so a
/// guesser that ignores the 429 is not slowed by this; the token's length is what stops it
/// (`serve` warns about a short one). What the throttle gives is one warning per episode in
/// the log, the `throttled` count, and a well-behaved client told to back off.
pub struct AuthThrottle {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl std::fmt::Debug for AuthThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthThrottle").finish_non_exhaustive()
    }
}

impl Default for AuthThrottle {
    fn default() -> Self {
        let per_minute = NonZeroU32::new(AUTH_FAILURES_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(AUTH_FAILURE_BURST).unwrap_or(NonZeroU32::MIN);
        Self {
            failures: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
            blocked: Mutex::new(HashMap::new()),
        }
    }
}

impl AuthThrottle {
    /// How long `address` must still wait, if it is throttled.
    pub fn blocked_for(&self, address: IpAddr) -> Option<Duration> {
        let blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        let until = *blocked.get(&address)?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failed attempt; returns how long the address is now throttled for, if it
    /// has used up its budget.
    pub fn failed(&self, address: IpAddr) -> Option<Duration> {
        let not_until = self.failures.check_key(&address).err()?;
        let wait = not_until.wait_time_from(governor::clock::Clock::now(self.failures.clock()));
        // Throttled until one attempt's worth of budget is back.
        let wait = wait.max(Duration::from_secs(
            60 / u64::from(AUTH_FAILURES_PER_MINUTE),
        ));
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        blocked.insert(address, Instant::now() + wait);
        Some(wait)
    }

    /// A request from `address` with a missing or wrong token: how long it must wait, when
    /// it is throttled. Already throttled: refused without counting. Else counted, and
    /// throttled (logged once, naming `what` was guessed at) once the address has used up
    /// its budget.
    pub fn refuse(&self, address: Option<IpAddr>, what: &str) -> Option<Duration> {
        let address = address?;
        self.blocked_for(address).or_else(|| {
            let wait = self.failed(address);
            if wait.is_some() {
                tracing::warn!(%address, "{what}: too many wrong tokens, address throttled");
            }
            wait
        })
    }

    /// Forgets addresses that are no longer throttled (run now and then).
    pub fn prune(&self) {
        self.failures.retain_recent();
        let now = Instant::now();
        self.blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn check() -> TokenCheck {
        TokenCheck::new(&SecretString::from("admin-token-1"))
    }

    fn with(value: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header((header::AUTHORIZATION, value))
            .to_http_request()
    }

    #[test]
    fn the_admin_token_comes_as_bearer_or_as_a_basic_password_where_allowed() {
        use base64::Engine as _;
        let check = check();
        assert!(check.admits_header(&with("Bearer admin-token-1"), false));
        assert!(check.admits_header(&with("bearer  admin-token-1 "), false));
        assert!(!check.admits_header(&with("Bearer admin-token-2"), true));
        let basic = |user_password: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_password)
            )
        };
        assert!(check.admits_header(&with(&basic("anyone:admin-token-1")), true));
        assert!(check.admits_header(&with(&basic(":admin-token-1")), true));
        assert!(!check.admits_header(&with(&basic("anyone:admin-token-1")), false));
        assert!(!check.admits_header(&with(&basic("admin-token-1")), true));
        assert!(!check.admits_header(&with("Basic !!!"), true));
        let query = TestRequest::with_uri("/pause?token=admin-token-1").to_http_request();
        assert!(!check.admits_header(&query, true), "never from the query");
    }
}
