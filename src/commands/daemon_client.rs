//! Talking to a running daemon's admin API, for `pause` and `resume`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::CommandError;
use crate::settings::Settings;

/// How long one request to the daemon may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon at `url`, with the admin token.
pub(super) struct DaemonClient {
    url: String,
    token: SecretString,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

/// A daemon's answer: its status and JSON body (`Null` when it had none).
pub(super) struct Answer {
    pub status: u16,
    pub body: Value,
}

impl DaemonClient {
    /// From the settings (`server.admin_token`; `server.bind` unless `url` is given).
    pub(super) fn new(config: Option<&Path>, url: Option<String>) -> Result<Self, CommandError> {
        let settings = Settings::load(config)?;
        let token = settings.server.admin_token.clone().ok_or_else(|| {
            CommandError::Setup(
                "the admin API needs server.admin_token (AUTOSCALER__SERVER__ADMIN_TOKEN), \
                 the same as the daemon's"
                    .into(),
            )
        })?;
        let url = url.unwrap_or_else(|| default_url(settings.server.bind));
        let url = url.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| CommandError::Setup(format!("cannot build the HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CommandError::Setup(format!("cannot start the async runtime: {e}")))?;
        Ok(Self {
            url,
            token,
            http,
            runtime,
        })
    }

    /// Sends `method path` (with `body` as JSON), the token as `Authorization: Bearer`.
    /// Unreachable, 401 and 403 are errors here (exit 2): the daemon or the token is not
    /// where the settings say.
    pub(super) fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, CommandError> {
        let url = format!("{}{path}", self.url);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = self.runtime.block_on(async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        });
        let (status, bytes) = answer.map_err(|e| {
            CommandError::Setup(format!(
                "cannot reach the daemon at {}: {}",
                self.url,
                describe(&e)
            ))
        })?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let answer = Answer { status, body };
        match status {
            401 => Err(CommandError::Setup(format!(
                "the daemon at {} refused the admin token (401): server.admin_token must be \
                 the daemon's",
                self.url
            ))),
            403 => Err(CommandError::Setup(format!(
                "the daemon at {} has the admin API off (403): {}",
                self.url,
                answer.error()
            ))),
            _ => Ok(answer),
        }
    }
}

impl Answer {
    /// The daemon's `{"error": "..."}`, or the status.
    pub(super) fn error(&self) -> String {
        self.body["error"]
            .as_str()
            .map_or_else(|| format!("HTTP {}", self.status), str::to_owned)
    }

    /// A refusal (exit 1), naming the status and the daemon's message.
    pub(super) fn refused(&self, what: &str) -> CommandError {
        CommandError::Invalid(format!("{what}: {} ({})", self.error(), self.status))
    }
}

/// `http://<server.bind>`, a wildcard bind reached through loopback.
fn default_url(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, bind.port()))
}

/// A reqwest error with its causes (the top level alone says only "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_is_the_bind_reached_through_loopback_when_it_is_a_wildcard() {
        let url = |bind: &str| default_url(bind.parse().unwrap());
        assert_eq!(url("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(url("0.0.0.0:9000"), "http://127.0.0.1:9000");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080");
        assert_eq!(url("10.0.0.5:8080"), "http://10.0.0.5:8080");
    }
}
