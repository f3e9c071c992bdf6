//! The sync engine: push the outbox, pull the view, retry with backoff.
//!
//! One **run** (a [`SyncReport`]) is: push every pending outbox row in
//! `client_seq` order, in gzip-compressed batches of [`PUSH_BATCH`]; then
//! pull pages from the stored cursor until `has_more` is false; then refresh
//! the plan catalog if it is older than [`PLANS_MAX_AGE`]. Runs never
//! overlap (one lock), and every request of a run shares one trace id.
//!
//! Push answers, per row: `applied` and `duplicate` mark the row done,
//! `rejected` marks it rejected with the server's code and message (the UI
//! lists it; the queue moves on). When the server names an `expected_seq`:
//! higher than our first pending row means it already has those rows (mark
//! them done); lower means it lost rows it acknowledged (a server restored
//! from a backup): they are queued again with their seqs and mutation ids if
//! this device still has them all, and otherwise the run fails with
//! [`Error::SequenceMismatch`] for a person to see. A pull that reports a
//! highest applied seq below our acknowledged rows does the same.
//! `client_seq_taken` on a row means the server holds that seq from another
//! change of this device (the device was restored from an older copy of
//! itself): that row and the rest are numbered again after the server's
//! highest seq and sent on.
//!
//! Pull applies each page and its cursor in one transaction. `resync: true`
//! clears the cached view (never the outbox) and pulls from the start; a
//! resync answer to a pull that already started from scratch is an error,
//! not a loop.
//!
//! **Triggers**: the background task ([`spawn`]) runs on a timer, on every
//! local write, when the network comes back ([`Shared::network_changed`]),
//! and the shell may call `sync_now`. After a transient failure (network,
//! 5xx, 429) it waits a capped, jittered, exponential delay, at least the
//! server's `Retry-After`; writes and the timer do not cut that wait short,
//! reconnecting and `sync_now` do. The attempt count is kept on the outbox
//! rows, so backoff survives a restart. While the shell says the device is
//! offline the background task does not try at all.
//!
//! Device clocks are display metadata only: nothing here orders by them.
//! `last_success` and `next_attempt_at` are for showing, and a skewed clock
//! can only make a retry come early or late.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use glassguard_protocol::ErrorCode;
use glassguard_protocol::api::{Page, Plan};
use glassguard_protocol::sync::{EntryStatus, PullResponse, PushRequest, PushResponse};
use reqwest::Method;
use rusqlite::Connection;
use tokio::time::Instant;

use crate::Shared;
use crate::client::{Body, Trace};
use crate::error::{Error, Result};
use crate::outbox::{self, OutboxRow};
use crate::store::{meta_get, meta_set};
use crate::view;

/// Rows per push request.
pub const PUSH_BATCH: usize = 200;
/// Changes asked for per pull page.
pub const PULL_LIMIT: usize = 500;
/// Pages pulled in one run at most; the next run carries on.
const MAX_PULL_PAGES: usize = 200;
/// Done rows kept in the outbox after a push, for diagnostics.
const KEEP_DONE: usize = 500;
/// How old the cached plan catalog may get before a run refreshes it.
pub const PLANS_MAX_AGE: Duration = Duration::from_secs(6 * 3600);

const LAST_SUCCESS: &str = "last_sync_success";
const PLANS_FETCHED: &str = "plans_fetched_at";

/// What the UI shows about sync.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncStatus {
    /// Commands waiting to be sent.
    pub pending: u64,
    /// Commands the server refused that the user has not dismissed.
    pub rejected: u64,
    /// When a run last succeeded (device clock; display only).
    pub last_success: Option<DateTime<Utc>>,
    /// Why the last run failed, if it did (a sentence for a person).
    pub last_error: Option<String>,
    /// A run is going on now.
    pub in_flight: bool,
    /// What the shell last said about the network.
    pub online: bool,
    /// When the background task will retry after a failure (device clock; display only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The upload being sent now, if any: bytes the server has confirmed of
    /// the blob's length (all uploads: [`crate::Core::uploads`]).
    pub upload: Option<crate::uploads::UploadProgress>,
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Rows the server applied now.
    pub applied: usize,
    /// Rows the server had applied before (a replay).
    pub duplicates: usize,
    /// Rows the server refused.
    pub rejected: usize,
    /// Rows marked done because the server's `expected_seq` was past them.
    pub skipped: usize,
    /// Rows given new seqs after the server's highest: the device was
    /// restored from an older copy of itself (`client_seq_taken`).
    pub renumbered: usize,
    /// Acknowledged rows sent again because the server no longer had them
    /// (it was restored from a backup).
    pub resent: usize,
    /// Changes pulled.
    pub pulled: usize,
    /// The server asked for a resync and the view was rebuilt.
    pub resynced: bool,
    /// Uploads completed (their attach commands queued) in this run.
    pub uploaded: usize,
}

/// Settings of the background task.
#[derive(Clone, Copy, Debug)]
pub struct BackgroundOptions {
    /// How often to sync when nothing else triggers it.
    pub interval: Duration,
}

impl Default for BackgroundOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(120),
        }
    }
}

/// What a push batch changed.
#[derive(Debug, Default)]
struct Progress {
    applied: usize,
    duplicates: usize,
    rejected: usize,
    skipped: usize,
    renumbered: usize,
    resent: usize,
}

/// Applies a push answer to the batch that was sent, in one transaction.
fn apply_push(conn: &mut Connection, batch: &[OutboxRow], resp: &PushResponse) -> Result<Progress> {
    let sent: HashMap<u64, &OutboxRow> = batch.iter().map(|r| (r.client_seq, r)).collect();
    let mut p = Progress::default();
    let tx = conn.transaction()?;
    for r in &resp.results {
        let row = sent.get(&r.client_seq).ok_or_else(|| {
            Error::Protocol(format!("a result for #{} which was not sent", r.client_seq))
        })?;
        if row.mutation_id != r.mutation_id {
            return Err(Error::Protocol(format!(
                "the result for #{} names another mutation",
                r.client_seq
            )));
        }
        let changed = match r.status {
            EntryStatus::Applied => {
                p.applied += 1;
                outbox::mark_done(&tx, r.client_seq)?
            }
            EntryStatus::Duplicate => {
                p.duplicates += 1;
                outbox::mark_done(&tx, r.client_seq)?
            }
            EntryStatus::Rejected if r.code == Some(ErrorCode::ClientSeqTaken) => {
                // The server stopped the batch here; this row and the rest
                // go again under seqs it has not seen.
                p.renumbered +=
                    outbox::renumber_pending(&tx, r.client_seq, resp.highest_applied_seq)?;
                tracing::warn!(
                    client_seq = r.client_seq,
                    server_highest = resp.highest_applied_seq,
                    renumbered = p.renumbered,
                    "the server has this seq from another change (device restored from an older copy?); renumbered the queue"
                );
                break;
            }
            EntryStatus::Rejected => {
                p.rejected += 1;
                let message = r
                    .message
                    .clone()
                    .unwrap_or_else(|| "the server refused this change".into());
                tracing::info!(client_seq = r.client_seq, code = ?r.code, "push rejected");
                outbox::mark_rejected(&tx, r.client_seq, r.code, &message)?
            }
        };
        if !changed {
            tracing::warn!(
                client_seq = r.client_seq,
                "result for a row that was not pending"
            );
        }
    }
    let mut mismatch = None;
    if let Some(expected) = resp.expected_seq
        && let Some(next_pending) = outbox::first_pending(&tx)?
    {
        if expected > next_pending {
            let skipped = outbox::mark_done_below(&tx, expected)?;
            tracing::warn!(
                expected,
                next_pending,
                skipped = skipped.len(),
                "server already had rows; marked done"
            );
            p.skipped = skipped.len();
        } else if expected < next_pending {
            // The server lost rows it acknowledged (restored from a backup):
            // send them again if this device still has them all.
            match outbox::requeue_lost(&tx, expected - 1)? {
                Some(n) if n > 0 => {
                    tracing::warn!(
                        expected,
                        resent = n,
                        "the server lost acknowledged rows; sending them again"
                    );
                    p.resent = n;
                }
                _ => {
                    mismatch = Some(Error::SequenceMismatch {
                        expected,
                        next_pending,
                    })
                }
            }
        }
    }
    outbox::prune(&tx, KEEP_DONE)?;
    // The answers we did get are kept even when the sequence is out of step.
    tx.commit()?;
    match mismatch {
        Some(e) => Err(e),
        None => Ok(p),
    }
}

impl Shared {
    /// One run; see the module docs. Updates the status either way.
    pub(crate) async fn run(&self) -> Result<SyncReport> {
        let _one_at_a_time = self.run_lock.lock().await;
        self.status.send_modify(|s| s.in_flight = true);
        let trace = Trace::new();
        let span = tracing::info_span!("sync_run", traceparent = %trace.traceparent());
        let result = tracing::Instrument::instrument(self.run_inner(&trace), span).await;
        let now = Utc::now();
        match &result {
            Ok(report) => {
                tracing::info!(?report, "sync run done");
                self.store
                    .call(move |c| meta_set(c, LAST_SUCCESS, &now.to_rfc3339()))
                    .await?;
                self.status.send_modify(|s| {
                    s.last_success = Some(now);
                    s.last_error = None;
                    s.next_attempt_at = None;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, permanent = e.is_permanent(), "sync run failed");
                let msg = e.to_string();
                self.status.send_modify(|s| s.last_error = Some(msg));
            }
        }
        self.status.send_modify(|s| s.in_flight = false);
        self.refresh_counts().await?;
        result
    }

    async fn run_inner(&self, trace: &Trace) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        // Uploads first: an attach command is queued only once its blob is
        // on the server. A failed upload does not hold back the push.
        let mut upload_error = None;
        let mut deferred = 0;
        match self.upload_all(trace).await {
            Ok(run) => {
                report.uploaded += run.attached;
                deferred = run.deferred;
            }
            Err(e) if !e.is_permanent() => upload_error = Some(e),
            Err(e) => return Err(e),
        }
        self.push_all(trace, &mut report).await?;
        if deferred > 0 && report.applied > 0 && upload_error.is_none() {
            // Their targets (claims, sales) may have just reached the server.
            match self.upload_all(trace).await {
                Ok(run) if run.attached > 0 => {
                    report.uploaded += run.attached;
                    self.push_all(trace, &mut report).await?;
                }
                Ok(_) => {}
                Err(e) if !e.is_permanent() => upload_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        if self.pull_all(trace, &mut report).await? > 0 {
            // The server had lost rows it acknowledged; they are queued again.
            self.push_all(trace, &mut report).await?;
            self.pull_all(trace, &mut report).await?;
        }
        let fetched = self.store.call(|c| meta_get(c, PLANS_FETCHED)).await?;
        let stale = fetched
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .is_none_or(|t| {
                Utc::now()
                    .signed_duration_since(t)
                    .to_std()
                    .unwrap_or_default()
                    > PLANS_MAX_AGE
            });
        if stale {
            self.refresh_plans(trace).await?;
        }
        match upload_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    async fn push_all(&self, trace: &Trace, report: &mut SyncReport) -> Result<()> {
        loop {
            let batch = self
                .store
                .call(|c| outbox::pending_batch(c, PUSH_BATCH))
                .await?;
            if batch.is_empty() {
                return Ok(());
            }
            let request = PushRequest {
                entries: batch.iter().map(OutboxRow::entry).collect(),
            };
            tracing::debug!(rows = batch.len(), first = batch[0].client_seq, "pushing");
            let gzip = self.push_gzip.load(Ordering::Relaxed);
            let body = if gzip {
                Body::GzipJson(&request)
            } else {
                Body::Json(&request)
            };
            let resp: PushResponse = match self
                .authed(Method::POST, "v1/sync/push", &[], body, trace)
                .await
            {
                // A server (or proxy) that cannot read gzip bodies answers
                // 415 (RFC 7694), or 400 when it took the bytes for JSON:
                // send plain JSON from now on.
                Err(Error::Refused {
                    status: 400 | 415, ..
                }) if gzip => {
                    tracing::warn!("the server refused a gzip push; sending plain JSON");
                    self.push_gzip.store(false, Ordering::Relaxed);
                    self.authed(
                        Method::POST,
                        "v1/sync/push",
                        &[],
                        Body::Json(&request),
                        trace,
                    )
                    .await?
                }
                other => other?,
            };
            let p = self.store.call(move |c| apply_push(c, &batch, &resp)).await;
            // Counts change even when the sequence check fails.
            self.refresh_counts().await?;
            let p = p?;
            report.applied += p.applied;
            report.duplicates += p.duplicates;
            report.rejected += p.rejected;
            report.skipped += p.skipped;
            report.renumbered += p.renumbered;
            report.resent += p.resent;
            if p.applied + p.duplicates + p.rejected + p.skipped + p.renumbered + p.resent == 0 {
                return Err(Error::Protocol(
                    "the server answered a push without taking any row".into(),
                ));
            }
        }
    }

    /// Pulls to the end of the feed. Returns how many acknowledged rows were
    /// queued again because the server no longer has them.
    async fn pull_all(&self, trace: &Trace, report: &mut SyncReport) -> Result<usize> {
        let mut restarted = false;
        let mut resent = 0;
        for _ in 0..MAX_PULL_PAGES {
            let cursor = self.store.call(|c| meta_get(c, view::CURSOR)).await?;
            let mut query = vec![("limit", PULL_LIMIT.to_string())];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.clone()));
            }
            let resp: PullResponse = self
                .authed(
                    Method::GET,
                    "v1/sync/pull",
                    &query,
                    Body::<()>::Empty,
                    trace,
                )
                .await?;
            if resp.resync {
                if cursor.is_none() || restarted {
                    return Err(Error::Protocol(
                        "the server asked for a resync of a pull from the start".into(),
                    ));
                }
                tracing::warn!("server asked for a resync; rebuilding the view");
                restarted = true;
                report.resynced = true;
            }
            let has_more = resp.has_more;
            let n = resp.changes.len();
            let resync = resp.resync;
            let lost = self
                .store
                .call(move |c| {
                    let tx = c.transaction()?;
                    let lost = outbox::requeue_lost(&tx, resp.highest_applied_seq)?;
                    if resp.resync {
                        view::clear(&tx)?;
                    }
                    // Changes that come with a resync answer are the first
                    // page from the start; without any, the next loop asks
                    // again from the start.
                    if !(resp.resync && resp.changes.is_empty()) {
                        for change in &resp.changes {
                            view::apply_change(&tx, change)?;
                        }
                        meta_set(&tx, view::CURSOR, &resp.cursor)?;
                        if !resp.has_more {
                            view::settle(&tx)?;
                        }
                    }
                    tx.commit()?;
                    Ok(lost)
                })
                .await?;
            match lost {
                Some(0) => {}
                Some(n) => {
                    tracing::warn!(
                        resent = n,
                        "the server lost acknowledged rows; sending them again"
                    );
                    report.resent += n;
                    resent += n;
                    self.refresh_counts().await?;
                }
                None => tracing::error!(
                    "the server lost acknowledged rows this device no longer has; they cannot be sent again"
                ),
            }
            report.pulled += n;
            // A resync without changes restarts the pull from the start.
            let restarting = resync && n == 0;
            if !has_more && !restarting {
                return Ok(resent);
            }
        }
        tracing::warn!("pull stopped after {MAX_PULL_PAGES} pages; the next run continues");
        Ok(resent)
    }

    /// Fetches the plan catalog and replaces the cached one.
    pub(crate) async fn refresh_plans(&self, trace: &Trace) -> Result<Vec<Plan>> {
        // The catalog is public: signed in or not, anyone may read it.
        let signed_in = self.store.call(|c| crate::session::me(c)).await?.is_some();
        let page: Page<Plan> = if signed_in {
            self.authed(Method::GET, "v1/plans", &[], Body::<()>::Empty, trace)
                .await?
        } else {
            self.client
                .send(Method::GET, "v1/plans", &[], Body::<()>::Empty, None, trace)
                .await?
        };
        let plans = page.items;
        let copy = plans.clone();
        let now = Utc::now();
        self.store
            .call(move |c| {
                let tx = c.transaction()?;
                view::replace_plans(&tx, &copy)?;
                meta_set(&tx, PLANS_FETCHED, &now.to_rfc3339())?;
                Ok(tx.commit()?)
            })
            .await?;
        Ok(plans)
    }

    /// Recomputes the outbox counts in the status.
    pub(crate) async fn refresh_counts(&self) -> Result<()> {
        let (pending, rejected) = self.store.call(|c| outbox::counts(c)).await?;
        self.status.send_modify(|s| {
            s.pending = pending;
            s.rejected = rejected;
        });
        Ok(())
    }

    /// Remembers a failed run on the pending rows (attempts, error, next try).
    async fn note_failure(&self, error: &Error, next: Option<DateTime<Utc>>) -> Result<()> {
        let msg = error.to_string();
        self.store
            .call(move |c| outbox::record_failure(c, &msg, next))
            .await
    }

    /// The shell's word on connectivity; coming online triggers a run now.
    pub(crate) fn network_changed(&self, online: bool) {
        let was = self.status.borrow().online;
        self.status.send_modify(|s| s.online = online);
        if online && !was {
            self.urgent.store(true, Ordering::SeqCst);
            self.wake.notify_one();
        }
    }

    /// A run requested by the shell; also resets the background backoff.
    pub(crate) async fn sync_now(&self) -> Result<SyncReport> {
        let result = self.run().await;
        match &result {
            Ok(_) => self.urgent.store(true, Ordering::SeqCst),
            Err(e) if !e.is_permanent() => self.note_failure(e, None).await?,
            Err(_) => {}
        }
        result
    }
}

/// The background task: runs on triggers, backs off on transient failures.
pub(crate) async fn background(shared: Arc<Shared>, options: BackgroundOptions) {
    // Resume the backoff where the last process left it.
    let (mut attempt, mut retry_at) = match shared.store.call(|c| outbox::head_retry(c)).await {
        Ok(Some((attempts, next))) => {
            // A retry time stored under a clock that was far ahead must not
            // stall the queue: no wait is ever longer than the backoff's.
            let wait = next
                .and_then(|t| t.signed_duration_since(Utc::now()).to_std().ok())
                .unwrap_or_default()
                .min(shared.backoff.longest());
            (attempts, next.map(|_| Instant::now() + wait))
        }
        _ => (0, None),
    };
    let mut first = true;
    loop {
        if !first {
            let wait = match retry_at {
                Some(t) => t.saturating_duration_since(Instant::now()),
                None => options.interval,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shared.wake.notified() => {}
            }
        }
        first = false;
        if shared.urgent.swap(false, Ordering::SeqCst) {
            attempt = 0;
            retry_at = None;
        }
        if !shared.status.borrow().online {
            continue;
        }
        if retry_at.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        if shared
            .store
            .call(|c| crate::session::me(c))
            .await
            .ok()
            .flatten()
            .is_none()
        {
            // Nothing to do until someone signs in (sign-in wakes us).
            retry_at = None;
            continue;
        }
        match shared.run().await {
            Ok(_) => {
                attempt = 0;
                retry_at = None;
            }
            Err(e) if !e.is_permanent() => {
                attempt = attempt.saturating_add(1);
                let delay = shared.backoff.delay(attempt, e.retry_after());
                retry_at = Some(Instant::now() + delay);
                let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                shared.status.send_modify(|s| s.next_attempt_at = Some(at));
                if let Err(e) = shared.note_failure(&e, Some(at)).await {
                    tracing::error!(error = %e, "cannot record the failed attempt");
                }
                tracing::info!(attempt, ?delay, "sync will retry");
            }
            Err(_) => {
                // Retrying cannot help; wait for the next trigger.
                retry_at = None;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mock_server::{self, Mock};
    use crate::store::tests::key;
    use crate::{Config, Core, SyncMark};
    use glassguard_protocol::api::{ClaimCreate, ClaimTransitionRequest, Job};
    use glassguard_protocol::claims::{ClaimAction, ClaimState, Resolution};
    use glassguard_protocol::sync::{Change, JobOutcome, OfflineSale};
    use glassguard_protocol::{ClaimId, ErrorCode, PhoneNumber, PolicyId, Role};
    use reqwest::StatusCode;

    pub(crate) fn fast_backoff() -> crate::Backoff {
        crate::Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(40),
            max_retry_after: Duration::from_millis(50),
        }
    }

    pub(crate) fn open(url: &str, dir: &std::path::Path) -> Core {
        Core::open_with(
            Config {
                data_dir: dir.to_path_buf(),
                db_key: key(5),
                server_url: url.to_owned(),
                pinned_server_key: None,
                insurer_public_key: None,
            },
            fast_backoff(),
        )
        .unwrap()
    }

    /// A mock server and a core signed in to it as `role`.
    pub(crate) async fn signed_in(role: Role) -> (Mock, tempfile::TempDir, Core) {
        let mock = Mock::start().await;
        mock.lock().role = Some(role);
        let dir = tempfile::tempdir().unwrap();
        let core = open(&mock.url, dir.path());
        let phone = PhoneNumber::parse("9876543210").unwrap();
        core.request_otp(phone.clone(), glassguard_protocol::api::OtpPurpose::SignIn)
            .await
            .unwrap();
        let me = core.sign_in(phone, "123456").await.unwrap();
        assert_eq!(me.role, role);
        core.refresh_plans().await.unwrap();
        (mock, dir, core)
    }

    fn trace_id(tp: &Option<String>) -> String {
        tp.as_deref().unwrap().split('-').nth(1).unwrap().to_owned()
    }

    #[tokio::test]
    async fn offline_sales_push_in_order_and_come_back_as_policies() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        let mut ids = vec![];
        for n in 0..3 {
            ids.push(core.record_sale(mock_server::sale(n)).await.unwrap());
        }
        let pending = core.pending().await.unwrap();
        assert_eq!(
            pending.iter().map(|r| r.client_seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(pending.iter().all(|r| r.command.name() == "record_sale"));
        assert_eq!(core.status().borrow().pending, 3);
        let sales = core.sales().await.unwrap();
        assert_eq!(sales.len(), 3);
        assert!(sales.iter().all(|s| s.sync == SyncMark::Queued));

        mock.lock().seen.clear();
        let report = core.sync_now().await.unwrap();
        assert_eq!(report.applied, 3);
        assert_eq!(report.pulled, 3);
        assert!(core.pending().await.unwrap().is_empty());
        assert!(
            core.sales().await.unwrap().is_empty(),
            "settled after the pull"
        );
        let mut got: Vec<_> = core
            .policies()
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        got.sort();
        ids.sort();
        assert_eq!(got, ids);
        let status = core.status().borrow().clone();
        assert_eq!((status.pending, status.rejected), (0, 0));
        assert!(status.last_success.is_some() && status.last_error.is_none());

        // Headers: gzip push, a fresh v7 request id each, one trace per run.
        let seen = mock.lock().seen.clone();
        let push = seen.iter().find(|s| s.path == "/v1/sync/push").unwrap();
        assert_eq!(push.content_encoding.as_deref(), Some("gzip"));
        assert!(
            push.authorization
                .as_deref()
                .unwrap()
                .starts_with("Bearer ")
        );
        let ids: std::collections::HashSet<_> =
            seen.iter().map(|s| s.request_id.clone().unwrap()).collect();
        assert_eq!(ids.len(), seen.len());
        for id in &ids {
            assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
        }
        let traces: std::collections::HashSet<_> =
            seen.iter().map(|s| trace_id(&s.traceparent)).collect();
        assert_eq!(traces.len(), 1, "one trace per run");
        mock.lock().seen.clear();
        core.sync_now().await.unwrap();
        let again = trace_id(&mock.lock().seen[0].traceparent);
        assert!(!traces.contains(&again), "a fresh trace per run");
    }

    #[tokio::test]
    async fn a_server_without_gzip_gets_plain_json() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        mock.lock().refuse_gzip = true;
        core.record_sale(mock_server::sale(0)).await.unwrap();
        assert_eq!(core.sync_now().await.unwrap().applied, 1);
        core.record_sale(mock_server::sale(1)).await.unwrap();
        assert_eq!(core.sync_now().await.unwrap().applied, 1);
        let encodings: Vec<_> = mock
            .lock()
            .seen
            .iter()
            .filter(|s| s.path == "/v1/sync/push")
            .map(|s| s.content_encoding.clone())
            .collect();
        assert_eq!(
            encodings,
            [Some("gzip".into()), None, None],
            "tried once, then plain"
        );
    }

    #[tokio::test]
    async fn a_covered_phone_is_refused_on_the_device_until_its_sale_is_refused() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        let again = |n| OfflineSale {
            id: PolicyId::new(),
            ..mock_server::sale(n)
        };
        let covered = |r: Result<PolicyId>| {
            assert_eq!(r.unwrap_err().code(), Some(ErrorCode::ImeiAlreadyCovered));
        };
        // Queued, then synced (an active policy in the cache).
        core.record_sale(mock_server::sale(0)).await.unwrap();
        covered(core.record_sale(again(0)).await);
        assert_eq!(core.sync_now().await.unwrap().applied, 1);
        covered(core.record_sale(again(0)).await);
        // Refused by the server: the phone is free again on this device.
        mock.lock().reject_seqs.insert(2);
        core.record_sale(mock_server::sale(1)).await.unwrap();
        covered(core.record_sale(again(1)).await);
        assert_eq!(core.sync_now().await.unwrap().rejected, 1);
        core.record_sale(again(1)).await.unwrap();
        // Another phone was never blocked.
        core.record_sale(mock_server::sale(2)).await.unwrap();
    }

    #[tokio::test]
    async fn rejected_rows_are_kept_for_the_user_and_do_not_block() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        mock.lock().reject_seqs.insert(2);
        for n in 0..3 {
            core.record_sale(mock_server::sale(n)).await.unwrap();
        }
        let report = core.sync_now().await.unwrap();
        assert_eq!((report.applied, report.rejected), (2, 1));
        let rejected = core.rejected().await.unwrap();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].client_seq, 2);
        assert_eq!(rejected[0].code, Some(ErrorCode::ImeiAlreadyCovered));
        assert!(rejected[0].message.contains("active policy"));
        assert_eq!(core.status().borrow().rejected, 1);
        let sales = core.sales().await.unwrap();
        assert_eq!(sales.len(), 1);
        assert!(matches!(
            sales[0].sync,
            SyncMark::Refused {
                code: Some(ErrorCode::ImeiAlreadyCovered),
                ..
            }
        ));
        assert_eq!(core.policies().await.unwrap().len(), 2);
        // Later rows still flow.
        core.record_sale(mock_server::sale(9)).await.unwrap();
        assert_eq!(core.sync_now().await.unwrap().applied, 1);

        assert!(core.dismiss_rejected(2).await.unwrap());
        assert!(core.rejected().await.unwrap().is_empty());
        assert!(core.sales().await.unwrap().is_empty());
        assert_eq!(core.status().borrow().rejected, 0);
    }

    #[tokio::test]
    async fn an_expected_seq_ahead_of_us_marks_rows_done() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        for n in 0..4 {
            core.record_sale(mock_server::sale(n)).await.unwrap();
        }
        {
            // The server already has 1 and 2 (say the device restored an old backup).
            let mut s = mock.lock();
            for seq in [1, 2] {
                s.applied.insert(
                    seq,
                    (
                        uuid::Uuid::now_v7(),
                        glassguard_protocol::sync::EntryStatus::Applied,
                        None,
                    ),
                );
            }
            s.force_expected = Some(3);
        }
        let report = core.sync_now().await.unwrap();
        assert_eq!((report.skipped, report.applied), (2, 2));
        assert!(core.pending().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_expected_seq_behind_us_is_surfaced_not_looped() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        // The row the server says it lacks was refused: it cannot be sent again.
        mock.lock().reject_seqs.insert(1);
        core.record_sale(mock_server::sale(0)).await.unwrap();
        core.sync_now().await.unwrap();
        core.record_sale(mock_server::sale(1)).await.unwrap();
        mock.lock().force_expected = Some(1);
        let err = core.sync_now().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::SequenceMismatch {
                    expected: 1,
                    next_pending: 2
                }
            ),
            "{err:?}"
        );
        assert!(err.is_permanent());
        let status = core.status().borrow().clone();
        assert!(status.last_error.unwrap().contains("expects change #1"));
        assert_eq!(status.pending, 1);
        assert_eq!(mock.lock().pushes, 2, "one try, no loop");
    }

    #[tokio::test]
    async fn resync_rebuilds_the_view_and_keeps_the_outbox() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        mock.lock().reject_seqs.insert(3);
        for n in 0..3 {
            core.record_sale(mock_server::sale(n)).await.unwrap();
        }
        core.sync_now().await.unwrap();
        assert_eq!(core.policies().await.unwrap().len(), 2);
        {
            // The server forgot one change and can no longer serve our cursor.
            let mut s = mock.lock();
            s.log.remove(0);
            s.generation += 1;
        }
        core.record_sale(mock_server::sale(7)).await.unwrap();
        let report = core.sync_now().await.unwrap();
        assert!(report.resynced);
        assert_eq!(report.applied, 1);
        assert_eq!(core.policies().await.unwrap().len(), 2, "1 kept + 1 new");
        assert_eq!(core.rejected().await.unwrap().len(), 1, "outbox untouched");
        // And the next run continues from the new cursor.
        assert_eq!(core.sync_now().await.unwrap(), SyncReport::default());
    }

    #[tokio::test]
    async fn an_expired_access_token_is_refreshed_once() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        core.record_sale(mock_server::sale(0)).await.unwrap();
        mock.expire_access();
        let (a, b) = tokio::join!(core.sync_now(), core.refresh_plans());
        a.unwrap();
        b.unwrap();
        assert_eq!(mock.lock().refreshes, 1, "single-flight refresh");
        assert!(core.pending().await.unwrap().is_empty());
        // The rotated pair is stored: after another expiry, the new refresh token works.
        mock.expire_access();
        core.sync_now().await.unwrap();
        assert_eq!(mock.lock().refreshes, 2);
    }

    #[tokio::test]
    async fn a_dead_refresh_token_ends_the_session() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        core.record_sale(mock_server::sale(0)).await.unwrap();
        mock.expire_access();
        mock.lock().valid_refresh.clear();
        let err = core.sync_now().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::SessionEnded {
                    code: ErrorCode::RefreshTokenInvalid
                }
            ),
            "{err:?}"
        );
        assert!(core.me().await.unwrap().is_none());
        assert_eq!(core.pending().await.unwrap().len(), 1, "work is kept");
        assert!(matches!(core.sync_now().await, Err(Error::NotSignedIn)));
    }

    #[tokio::test]
    async fn rate_limits_and_server_errors_are_transient() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        core.record_sale(mock_server::sale(0)).await.unwrap();
        mock.lock().fail_next.extend([
            (StatusCode::TOO_MANY_REQUESTS, Some(7)),
            (StatusCode::SERVICE_UNAVAILABLE, None),
        ]);
        let err = core.sync_now().await.unwrap_err();
        assert!(!err.is_permanent());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        let err = core.sync_now().await.unwrap_err();
        assert!(matches!(err, Error::Server { status: 503, .. }), "{err:?}");
        let row = &core.pending().await.unwrap()[0];
        assert_eq!(row.attempts, 2);
        assert!(row.last_error.as_deref().unwrap().contains("503"));
        assert_eq!(core.sync_now().await.unwrap().applied, 1);
    }

    /// Waits (bounded) until the status satisfies `f`.
    async fn wait_for(core: &Core, f: impl Fn(&SyncStatus) -> bool) -> SyncStatus {
        let mut rx = core.status();
        tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| f(s)))
            .await
            .expect("status never got there")
            .unwrap()
            .clone()
    }

    #[tokio::test]
    async fn background_waits_for_the_network_and_backs_off_on_failures() {
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        core.network_changed(false);
        core.start_background(BackgroundOptions {
            interval: Duration::from_secs(3600),
        });
        core.record_sale(mock_server::sale(0)).await.unwrap();
        // Offline: the write wakes the task, which must not try.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let pushes = |m: &Mock| {
            m.lock()
                .seen
                .iter()
                .filter(|s| s.path == "/v1/sync/push")
                .count()
        };
        assert_eq!(pushes(&mock), 0);

        mock.lock().fail_next.extend([
            (StatusCode::SERVICE_UNAVAILABLE, None),
            (StatusCode::BAD_GATEWAY, None),
        ]);
        core.network_changed(true);
        let status = wait_for(&core, |s| s.pending == 0 && s.last_success.is_some()).await;
        assert!(status.online && status.last_error.is_none());
        assert_eq!(pushes(&mock), 3, "two failures, then success");

        // A new write triggers a push without waiting for the timer.
        core.record_sale(mock_server::sale(1)).await.unwrap();
        wait_for(&core, |s| s.pending == 0 && !s.in_flight).await;
        assert_eq!(core.policies().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn signing_in_as_someone_else_clears_the_view() {
        let (mock, dir, core) = signed_in(Role::PartnerStaff).await;
        core.record_sale(mock_server::sale(0)).await.unwrap();
        core.sync_now().await.unwrap();
        assert_eq!(core.policies().await.unwrap().len(), 1);
        // Same user again: kept.
        let phone = PhoneNumber::parse("9876543210").unwrap();
        core.sign_in(phone.clone(), "123456").await.unwrap();
        assert_eq!(core.policies().await.unwrap().len(), 1);
        mock.lock().user = Some(glassguard_protocol::UserId::new());
        core.sign_in(phone, "123456").await.unwrap();
        assert!(core.policies().await.unwrap().is_empty());
        // The device id never changes.
        let id = core.device_id();
        drop(core);
        assert_eq!(open(&mock.url, dir.path()).device_id(), id);
    }

    #[tokio::test]
    async fn a_customer_drafts_and_submits_a_claim() {
        let (mock, _dir, core) = signed_in(Role::Customer).await;
        let user = mock.lock().user.unwrap();
        let policy = mock_server::policy_from(&mock_server::sale(0), user);
        mock.push_change(Change::Policy(policy.clone()));
        core.sync_now().await.unwrap();
        let draft = ClaimCreate {
            id: ClaimId::new(),
            policy_id: policy.id,
            incident_at: Utc::now(),
            narrative: String::new(),
            photo_refs: vec![],
            contact_phone: None,
        };
        core.draft_claim(draft.clone()).await.unwrap();
        assert_eq!(core.drafts().await.unwrap()[0].sync, SyncMark::Draft);
        assert!(
            core.pending().await.unwrap().is_empty(),
            "drafts are local only"
        );
        // An empty narrative cannot be filed.
        assert!(matches!(
            core.submit_claim(draft.id).await,
            Err(Error::Invalid { .. })
        ));
        let draft = ClaimCreate {
            narrative: "Dropped it on the stairs".into(),
            ..draft
        };
        core.draft_claim(draft.clone()).await.unwrap();
        core.submit_claim(draft.id).await.unwrap();
        assert_eq!(core.drafts().await.unwrap()[0].sync, SyncMark::Queued);
        assert!(
            core.draft_claim(draft.clone()).await.is_err(),
            "submitted: no more edits"
        );
        core.sync_now().await.unwrap();
        assert!(core.drafts().await.unwrap().is_empty());
        let claims = core.claims().await.unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].state, ClaimState::Submitted);

        // A claim on a policy this device does not know is refused locally.
        let other = ClaimCreate {
            id: ClaimId::new(),
            policy_id: glassguard_protocol::PolicyId::new(),
            ..draft
        };
        assert!(matches!(
            core.draft_claim(other).await,
            Err(Error::Invalid {
                code: ErrorCode::NotFound,
                ..
            })
        ));
        // Local transition checks.
        let bad = ClaimTransitionRequest {
            action: ClaimAction::Close,
            expected_state: ClaimState::Submitted,
            reason: None,
            technician_id: None,
            documents: None,
        };
        assert!(matches!(
            core.request_transition(claims[0].id, bad).await,
            Err(Error::Invalid {
                code: ErrorCode::IllegalTransition,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_technician_records_an_outcome() {
        let (mock, _dir, core) = signed_in(Role::Technician).await;
        let user = mock.lock().user.unwrap();
        let sale = mock_server::sale(0);
        let mut claim = mock_server::claim_from(
            &ClaimCreate {
                id: ClaimId::new(),
                policy_id: sale.id,
                incident_at: Utc::now(),
                narrative: "cracked".into(),
                photo_refs: vec![],
                contact_phone: None,
            },
            user,
        );
        claim.state = ClaimState::InRepair;
        mock.push_change(Change::Job(Job {
            claim: claim.clone(),
            brand: sale.brand.clone(),
            model: sale.model.clone(),
            imei: sale.imei,
        }));
        core.sync_now().await.unwrap();
        assert_eq!(core.jobs().await.unwrap().len(), 1);
        let outcome = JobOutcome {
            claim_id: claim.id,
            outcome: Resolution::Repaired,
            notes: Some("new panel".into()),
            photo_refs: vec!["sha256:ab".into()],
        };
        assert!(matches!(
            core.record_job_outcome(JobOutcome {
                outcome: Resolution::VoucherIssued,
                ..outcome.clone()
            })
            .await,
            Err(Error::Invalid {
                code: ErrorCode::BenefitNotAllowed,
                ..
            })
        ));
        assert!(matches!(
            core.record_job_outcome(JobOutcome {
                claim_id: ClaimId::new(),
                ..outcome.clone()
            })
            .await,
            Err(Error::Invalid {
                code: ErrorCode::NotFound,
                ..
            })
        ));
        core.record_job_outcome(outcome.clone()).await.unwrap();
        assert!(core.record_job_outcome(outcome).await.is_err(), "once");
        assert_eq!(core.job_outcomes().await.unwrap()[0].sync, SyncMark::Queued);
        // A technician cannot sell.
        assert!(matches!(
            core.record_sale(mock_server::sale(3)).await,
            Err(Error::Invalid {
                code: ErrorCode::Forbidden,
                ..
            })
        ));
        assert_eq!(core.sync_now().await.unwrap().applied, 1);
        assert!(core.job_outcomes().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_cached_catalog_checks_the_price_band() {
        let (_mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        assert_eq!(core.plans().await.unwrap().len(), 1);
        let mut sale = mock_server::sale(0);
        sale.device_price = glassguard_protocol::Money::from_rupees(90_000).unwrap();
        assert!(matches!(
            core.record_sale(sale).await,
            Err(Error::Invalid {
                code: ErrorCode::PlanNotApplicable,
                ..
            })
        ));
        let sale = mock_server::sale(1);
        core.record_sale(sale.clone()).await.unwrap();
        let again = glassguard_protocol::sync::OfflineSale {
            id: glassguard_protocol::PolicyId::new(),
            ..sale
        };
        assert!(matches!(
            core.record_sale(again).await,
            Err(Error::Invalid {
                code: ErrorCode::ImeiAlreadyCovered,
                ..
            })
        ));
    }
}
