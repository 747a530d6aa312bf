//! One module owns the process signals and turns them into messages: SIGHUP → reload,
//! SIGTERM/SIGINT → shutdown. tokio's handlers are process-wide, so only the binary's
//! `serve` installs them; tests drive the same paths through an `AppHandle`.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Reload,
    Shutdown,
}

/// Listens for SIGHUP, SIGTERM and SIGINT until `stop` is cancelled. Reloads coalesce:
/// while one is waiting to be handled, further SIGHUPs add nothing.
pub fn listen(stop: CancellationToken) -> std::io::Result<mpsc::Receiver<Signal>> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::channel(1);
    tracing::debug!("listening for SIGHUP, SIGTERM and SIGINT");
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                Some(()) = hangup.recv() => Signal::Reload,
                Some(()) = terminate.recv() => Signal::Shutdown,
                Some(()) = interrupt.recv() => Signal::Shutdown,
            };
            match message {
                // A full channel means a reload is already pending: that one will read the
                // file as it is now, which is all this signal asked for.
                Signal::Reload => {
                    tracing::debug!("SIGHUP received");
                    let _ = tx.try_send(Signal::Reload);
                }
                Signal::Shutdown => {
                    let _ = tx.send(Signal::Shutdown).await;
                }
            }
        }
    });
    Ok(rx)
}
