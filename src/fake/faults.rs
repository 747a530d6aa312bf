//! Scripted failures: what production does now and then, on demand.
//!
//! A [`FaultRule`] is queued with [`super::FakeCloudAmqp::inject`] and hits the next
//! `times` requests it matches, before any normal handling (authentication included: a
//! load balancer's 503 or a rate limiter's 429 does not look at credentials). Rules hit
//! instances' management paths (`/management/…`) like any other; [`FaultRule::management`]
//! is the short way to aim at them. The canned bodies are the Customer API's.

use std::collections::VecDeque;
use std::time::Duration;

use super::management::PREFIX as MANAGEMENT_PREFIX;

/// Which request paths a [`FaultRule`] hits. Paths are compared without the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Every path.
    Any,
    /// Exactly this path, e.g. `/api/instances/359559`.
    Exact(String),
    /// Every path starting with this, e.g. `/api/instances`.
    Prefix(String),
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => path == exact,
            Self::Prefix(prefix) => path.starts_with(prefix.as_str()),
        }
    }
}

/// What a faulty answer looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429; production's limits and body are undocumented, `Retry-After` may or may not come.
    TooManyRequests { retry_after: Option<u64> },
    /// 503 with a non-JSON body, as a load balancer sends it.
    ServiceUnavailable,
    /// 423 `{"message":"Instance is locked while it is being configured"}`.
    Locked,
    /// 400 `{"error":"Timeout talking to backend","error_code":40099}`: a 400 that is transient.
    BackendTimeout,
    /// 401 `{"error":"Not authorized"}` whatever the credentials (production did this once).
    Unauthorized,
    /// The normal answer, sent after this real delay (not the injected clock: the point is
    /// to outlast a client's timeout). The request takes effect before the delay, so a slow
    /// `PUT` is applied even if the client gives up, as a slow production answer would be.
    Slow(Duration),
    /// 200 with a JSON content type and a body that is not JSON at all.
    MalformedBody,
    /// The connection is closed without any HTTP answer; the request is not handled.
    DropConnection,
    /// The request is handled as normal (a `POST` creates its object, a `PUT` applies), then
    /// the connection is closed without any HTTP answer: the answer lost on its way back,
    /// after which a client cannot tell whether its request took effect.
    DropAfterHandling,
    /// Any status with any JSON body, for shapes nobody has seen yet
    /// (e.g. 400 `{"errors":[…]}`).
    Respond {
        status: u16,
        body: serde_json::Value,
    },
}

/// A fault and the requests it hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// `None` hits every method; otherwise compared case-insensitively.
    pub method: Option<String>,
    pub path: PathMatch,
    pub fault: Fault,
    /// How many matching requests it hits before it is spent.
    pub times: usize,
}

impl FaultRule {
    /// A fault hitting the next request, whatever its method and path.
    pub fn once(fault: Fault) -> Self {
        Self {
            method: None,
            path: PathMatch::Any,
            fault,
            times: 1,
        }
    }

    /// A fault hitting the next request to any instance's management API (paths under
    /// `/management/`), whatever its method.
    pub fn management(fault: Fault) -> Self {
        Self::once(fault).path(PathMatch::Prefix(MANAGEMENT_PREFIX.to_owned()))
    }

    /// Only requests with this method (`"GET"`, `"PUT"`, …).
    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    /// Only requests whose path matches.
    #[must_use]
    pub fn path(mut self, path: PathMatch) -> Self {
        self.path = path;
        self
    }

    /// Hits this many matching requests instead of one.
    #[must_use]
    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.matches(path)
    }
}

/// Queued rules, plus the "401 on the first GET after a PUT" trap.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: VecDeque<FaultRule>,
    /// Armed: the next accepted PUT sets `pending`.
    unauthorized_after_put: bool,
    /// The next Customer API GET answers 401.
    pending_unauthorized: bool,
}

impl Faults {
    pub fn push(&mut self, rule: FaultRule) {
        if rule.times > 0 {
            self.rules.push_back(rule);
        }
    }

    pub fn arm_unauthorized_after_put(&mut self) {
        self.unauthorized_after_put = true;
    }

    /// Called on every accepted PUT.
    pub fn put_accepted(&mut self) {
        if std::mem::take(&mut self.unauthorized_after_put) {
            self.pending_unauthorized = true;
        }
    }

    /// The fault this request meets, if any: the oldest matching rule, which uses up one of
    /// its hits; the 401-after-PUT trap comes first as it models one specific moment of the
    /// Customer API (an instance's management API is another server and never springs it).
    pub fn take(&mut self, method: &str, path: &str) -> Option<Fault> {
        if self.pending_unauthorized
            && method.eq_ignore_ascii_case("GET")
            && !path.starts_with(MANAGEMENT_PREFIX)
        {
            self.pending_unauthorized = false;
            return Some(Fault::Unauthorized);
        }
        let index = self.rules.iter().position(|r| r.matches(method, path))?;
        let rule = self.rules.get_mut(index)?;
        rule.times -= 1;
        let fault = rule.fault.clone();
        if rule.times == 0 {
            self.rules.remove(index);
        }
        Some(fault)
    }

    /// Forgets every queued fault: CloudAMQP is well again.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// How many rules still have hits left.
    pub fn pending(&self) -> usize {
        self.rules.len() + usize::from(self.pending_unauthorized || self.unauthorized_after_put)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_fifo_and_get_spent() {
        let mut faults = Faults::default();
        faults.push(FaultRule::once(Fault::Locked).method("PUT").times(2));
        faults.push(FaultRule::once(Fault::ServiceUnavailable));
        assert_eq!(
            faults.take("GET", "/api/plans"),
            Some(Fault::ServiceUnavailable)
        );
        assert_eq!(faults.take("put", "/api/instances/1"), Some(Fault::Locked));
        assert_eq!(faults.take("PUT", "/api/instances/1"), Some(Fault::Locked));
        assert_eq!(faults.take("PUT", "/api/instances/1"), None);
        assert_eq!(faults.pending(), 0);
    }

    #[test]
    fn unauthorized_after_put_hits_the_first_get_only() {
        let mut faults = Faults::default();
        faults.arm_unauthorized_after_put();
        assert_eq!(faults.take("GET", "/api/instances/1"), None);
        faults.put_accepted();
        assert_eq!(faults.take("PUT", "/api/instances/1"), None);
        assert_eq!(
            faults.take("GET", "/api/instances/1"),
            Some(Fault::Unauthorized)
        );
        assert_eq!(faults.take("GET", "/api/instances/1"), None);
    }

    #[test]
    fn the_trap_after_a_put_ignores_management_paths() {
        let mut faults = Faults::default();
        faults.arm_unauthorized_after_put();
        faults.put_accepted();
        assert_eq!(faults.take("GET", "/management/1/api/nodes"), None);
        assert_eq!(
            faults.take("GET", "/api/instances/1"),
            Some(Fault::Unauthorized)
        );
    }

    #[test]
    fn management_rules_hit_management_paths_only() {
        let mut faults = Faults::default();
        faults.push(FaultRule::management(Fault::ServiceUnavailable));
        assert_eq!(faults.take("GET", "/api/instances/1"), None);
        assert_eq!(
            faults.take("GET", "/management/1/api/nodes"),
            Some(Fault::ServiceUnavailable)
        );
        assert_eq!(faults.pending(), 0);
    }

    #[test]
    fn path_matching() {
        assert!(PathMatch::Prefix("/api/instances".into()).matches("/api/instances/1/nodes"));
        assert!(!PathMatch::Exact("/api/instances".into()).matches("/api/instances/1"));
    }
}
