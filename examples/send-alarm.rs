//! Sends a sample alarm to a running daemon, the way CloudAMQP's webhook recipient would.
//!
//! ```sh
//! cargo run --example send-alarm                                  # memory 85 % to 127.0.0.1:8080
//! cargo run --example send-alarm -- --file examples/alarms/memory-97.json
//! cargo run --example send-alarm -- --url https://autoscaler.example.com --token "$TOKEN"
//! ```

use std::path::PathBuf;

use clap::Parser;

/// Posts an alarm JSON to the daemon's webhook and prints the answer.
#[derive(Debug, Parser)]
struct Args {
    /// The daemon's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The webhook token (`server.webhook_token`), sent as `?token=`.
    #[arg(
        long,
        env = "AUTOSCALER__SERVER__WEBHOOK_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// The alarm to send.
    #[arg(long, default_value = "examples/alarms/memory-85.json")]
    file: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let body = std::fs::read_to_string(&args.file)?;
    let mut url = reqwest::Url::parse(&args.url)?.join("/cloudamqp/alarm")?;
    if let Some(token) = &args.token {
        url.query_pairs_mut().append_pair("token", token);
    }
    let response = reqwest::Client::new().post(url).body(body).send().await?;
    println!("{} {}", response.status(), response.text().await?);
    Ok(())
}
