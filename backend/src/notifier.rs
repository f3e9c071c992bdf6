//! The notification worker: drains the outbox through an [`SmsSender`].
//!
//! The default sender is the dev inbox (messages land in a table admins can
//! read over the API), so a person can run every flow locally; a real
//! gateway (AWS SNS) implements the same trait.

use chrono::Duration;
use glassguard_protocol::PhoneNumber;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::clock::Clock;
use crate::crypto::Keyring;
use crate::store::Store;

/// Why a send failed, and whether to try again.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later (network, throttling).
    #[error("temporary: {0}")]
    Temporary(String),
    /// Will never succeed (bad number, rejected content).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Something that delivers an SMS.
pub trait SmsSender: Send + Sync + std::fmt::Debug {
    /// Sends one message.
    fn send<'a>(
        &'a self,
        to: &'a PhoneNumber,
        body: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;
}

/// The dev sender: writes into the `sms_inbox` table.
#[derive(Debug, Clone)]
pub struct DevInbox {
    store: Store,
    keys: Keyring,
    clock: Arc<dyn Clock>,
}

impl DevInbox {
    /// A dev inbox over the store.
    pub fn new(store: Store, keys: Keyring, clock: Arc<dyn Clock>) -> Self {
        Self { store, keys, clock }
    }
}

impl SmsSender for DevInbox {
    fn send<'a>(
        &'a self,
        to: &'a PhoneNumber,
        body: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(async move {
            self.store
                .deliver_to_inbox(&self.keys, to, body, self.clock.now())
                .await
                .map_err(|e| SendError::Temporary(e.to_string()))
        })
    }
}

const MAX_ATTEMPTS: i64 = 8;

/// Sends what is due once; returns how many were sent.
pub async fn drain_once(
    store: &Store,
    keys: &Keyring,
    clock: &dyn Clock,
    sender: &dyn SmsSender,
) -> usize {
    let now = clock.now();
    let due = match store.take_due_notifications(keys, now, 50).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "notification outbox unreadable");
            return 0;
        }
    };
    let mut sent = 0;
    for msg in due {
        let result = sender.send(&msg.to, &msg.body).await;
        let now = clock.now();
        let recorded = match result {
            Ok(()) => {
                sent += 1;
                store.notification_sent(&msg.id, now).await
            }
            Err(SendError::Temporary(e)) if msg.attempts < MAX_ATTEMPTS => {
                // Capped exponential backoff: 2 s, 4 s, ... up to 5 minutes.
                let wait = Duration::seconds((1i64 << msg.attempts.min(8)).min(300));
                tracing::warn!(id = %msg.id, attempts = msg.attempts, "sms send failed; will retry");
                store
                    .notification_failed(&msg.id, &e, Some(wait), now)
                    .await
            }
            Err(e) => {
                tracing::error!(id = %msg.id, attempts = msg.attempts, "sms send failed for good");
                store
                    .notification_failed(&msg.id, &e.to_string(), None, now)
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record the outcome of a send");
        }
    }
    sent
}

/// Runs the worker until the task is dropped: drains when woken, and every second anyway.
pub async fn run(
    store: Store,
    keys: Keyring,
    clock: Arc<dyn Clock>,
    sender: Arc<dyn SmsSender>,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        while drain_once(&store, &keys, clock.as_ref(), sender.as_ref()).await > 0 {}
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
        }
    }
}
