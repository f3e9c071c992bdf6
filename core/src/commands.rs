//! Offline commands: each writes its local change and its outbox row in one
//! transaction, then wakes the sync engine.
//!
//! Local checks here are early feedback, not authority: they catch what the
//! device can know (the cached catalog's price bands, a job that is not on
//! this technician's list, a transition the state machine forbids) so the
//! user hears it at the counter instead of minutes later. The server checks
//! everything again and has the last word.

use chrono::Utc;
use glassguard_protocol::api::{ClaimCreate, ClaimTransitionRequest, Me, Plan};
use glassguard_protocol::claims::Resolution;
use glassguard_protocol::sync::{Command, JobOutcome, OfflineSale};
use glassguard_protocol::{ClaimId, ErrorCode, PolicyId, Role};
use rusqlite::Connection;

use crate::Shared;
use crate::error::{Error, Result};
use crate::outbox;
use crate::session;
use crate::view::{self, Kind, SyncMark};

fn signed_in(conn: &Connection, roles: &[Role], what: &str) -> Result<Me> {
    let me = session::me(conn)?.ok_or(Error::NotSignedIn)?;
    if roles.contains(&me.role) {
        Ok(me)
    } else {
        Err(Error::invalid(
            ErrorCode::Forbidden,
            format!("a {} cannot {what}", me.role),
        ))
    }
}

fn not_blank(value: &str, field: &str) -> Result<()> {
    if value.trim().is_empty() {
        Err(Error::invalid(
            ErrorCode::InvalidRequest,
            format!("{field} is required"),
        ))
    } else {
        Ok(())
    }
}

/// Checks the sale's plan and price against the cached catalog, if there is one.
fn check_plan(plans: &[Plan], sale: &OfflineSale) -> Result<()> {
    if plans.is_empty() {
        // Never fetched: the server will check.
        return Ok(());
    }
    let plan = plans.iter().find(|p| p.id == sale.plan_id).ok_or_else(|| {
        Error::invalid(
            ErrorCode::PlanNotApplicable,
            format!("there is no plan {:?}", sale.plan_id),
        )
    })?;
    let covered = plan
        .bands
        .iter()
        .any(|b| b.up_to.is_none_or(|up_to| sale.device_price <= up_to));
    if covered {
        Ok(())
    } else {
        Err(Error::invalid(
            ErrorCode::PlanNotApplicable,
            format!("{} does not cover a device at this price", plan.name),
        ))
    }
}

impl Shared {
    /// Records a sale at the counter; see [`crate::Core::record_sale`].
    #[tracing::instrument(skip_all, fields(policy_id = %sale.id))]
    pub(crate) async fn record_sale(&self, sale: OfflineSale) -> Result<PolicyId> {
        not_blank(&sale.customer_name, "the customer's name")?;
        not_blank(&sale.brand, "the brand")?;
        not_blank(&sale.model, "the model")?;
        not_blank(&sale.invoice_ref, "the invoice")?;
        not_blank(&sale.screen_photo_ref, "the screen photo")?;
        let id = sale.id;
        self.write(move |c| {
            signed_in(c, &[Role::PartnerStaff, Role::PartnerAdmin], "sell a plan")?;
            check_plan(&view::plans(c)?, &sale)?;
            let key = id.to_string();
            if view::local::<OfflineSale>(c, Kind::Sale, &key)?.is_some()
                || view::policy(c, &key)?.is_some()
            {
                return Err(Error::invalid(
                    ErrorCode::InvalidRequest,
                    "this sale was already recorded",
                ));
            }
            let imei_taken = view::imei_covered(c, &sale.imei)?;
            if imei_taken {
                return Err(Error::invalid(
                    ErrorCode::ImeiAlreadyCovered,
                    "this phone already has an active policy",
                ));
            }
            let now = Utc::now();
            let tx = c.transaction()?;
            let row = outbox::enqueue(&tx, &Command::RecordSale(sale.clone()), now)?;
            view::put_local(&tx, Kind::Sale, &key, &sale, Some(row.client_seq), now)?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    /// Saves a claim draft (new or edited); see [`crate::Core::draft_claim`].
    #[tracing::instrument(skip_all, fields(claim_id = %draft.id))]
    pub(crate) async fn draft_claim(&self, draft: ClaimCreate) -> Result<ClaimId> {
        let id = draft.id;
        self.write(move |c| {
            signed_in(c, &[Role::Customer], "file a claim")?;
            if view::policy(c, &draft.policy_id.to_string())?.is_none() {
                return Err(Error::invalid(
                    ErrorCode::NotFound,
                    "that policy is not on this device; sync and try again",
                ));
            }
            let key = id.to_string();
            if let Some(existing) = view::local::<ClaimCreate>(c, Kind::Draft, &key)?
                && matches!(existing.sync, SyncMark::Queued | SyncMark::Sent)
            {
                return Err(Error::invalid(
                    ErrorCode::IllegalTransition,
                    "this claim was already submitted",
                ));
            }
            if view::claim(c, &key)?.is_some() {
                return Err(Error::invalid(
                    ErrorCode::IllegalTransition,
                    "this claim was already submitted",
                ));
            }
            let tx = c.transaction()?;
            view::put_local(&tx, Kind::Draft, &key, &draft, None, Utc::now())?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    /// Deletes a draft that was not submitted (or was refused).
    pub(crate) async fn discard_draft(&self, id: ClaimId) -> Result<()> {
        self.write(move |c| {
            let key = id.to_string();
            let draft = view::local::<ClaimCreate>(c, Kind::Draft, &key)?
                .ok_or_else(|| Error::invalid(ErrorCode::NotFound, "no such draft"))?;
            if matches!(draft.sync, SyncMark::Queued | SyncMark::Sent) {
                return Err(Error::invalid(
                    ErrorCode::IllegalTransition,
                    "a submitted claim cannot be discarded",
                ));
            }
            let tx = c.transaction()?;
            view::delete_local(&tx, Kind::Draft, &key)?;
            Ok(tx.commit()?)
        })
        .await
    }

    /// Queues a draft for the server; see [`crate::Core::submit_claim`].
    #[tracing::instrument(skip_all, fields(claim_id = %id))]
    pub(crate) async fn submit_claim(&self, id: ClaimId) -> Result<u64> {
        self.write(move |c| {
            signed_in(c, &[Role::Customer], "file a claim")?;
            let key = id.to_string();
            let draft = view::local::<ClaimCreate>(c, Kind::Draft, &key)?
                .ok_or_else(|| Error::invalid(ErrorCode::NotFound, "no such draft"))?;
            if matches!(draft.sync, SyncMark::Queued | SyncMark::Sent) {
                return Err(Error::invalid(
                    ErrorCode::IllegalTransition,
                    "this claim was already submitted",
                ));
            }
            not_blank(&draft.value.narrative, "what happened")?;
            let now = Utc::now();
            let tx = c.transaction()?;
            let row = outbox::enqueue(&tx, &Command::CreateClaim(draft.value.clone()), now)?;
            view::put_local(
                &tx,
                Kind::Draft,
                &key,
                &draft.value,
                Some(row.client_seq),
                now,
            )?;
            tx.commit()?;
            Ok(row.client_seq)
        })
        .await
    }

    /// Records a technician's outcome; see [`crate::Core::record_job_outcome`].
    #[tracing::instrument(skip_all, fields(claim_id = %outcome.claim_id))]
    pub(crate) async fn record_job_outcome(&self, outcome: JobOutcome) -> Result<u64> {
        if !matches!(
            outcome.outcome,
            Resolution::Repaired | Resolution::Exchanged
        ) {
            return Err(Error::invalid(
                ErrorCode::BenefitNotAllowed,
                "a technician records a repair or an exchange",
            ));
        }
        self.write(move |c| {
            signed_in(c, &[Role::Technician], "record a job outcome")?;
            let key = outcome.claim_id.to_string();
            if view::job(c, &key)?.is_none() {
                return Err(Error::invalid(
                    ErrorCode::NotFound,
                    "that job is not allocated to you on this device; sync and try again",
                ));
            }
            if let Some(existing) = view::local::<JobOutcome>(c, Kind::Outcome, &key)?
                && !matches!(existing.sync, SyncMark::Refused { .. })
            {
                return Err(Error::invalid(
                    ErrorCode::IllegalTransition,
                    "an outcome for this job is already recorded",
                ));
            }
            let now = Utc::now();
            let tx = c.transaction()?;
            let row = outbox::enqueue(&tx, &Command::RecordJobOutcome(outcome.clone()), now)?;
            view::put_local(
                &tx,
                Kind::Outcome,
                &key,
                &outcome,
                Some(row.client_seq),
                now,
            )?;
            tx.commit()?;
            Ok(row.client_seq)
        })
        .await
    }

    /// Queues a transition request; see [`crate::Core::request_transition`].
    #[tracing::instrument(skip_all, fields(claim_id = %claim_id, action = %request.action))]
    pub(crate) async fn request_transition(
        &self,
        claim_id: ClaimId,
        request: ClaimTransitionRequest,
    ) -> Result<u64> {
        request
            .expected_state
            .apply(request.action)
            .map_err(|e| Error::invalid(ErrorCode::IllegalTransition, e.to_string()))?;
        self.write(move |c| {
            session::me(c)?.ok_or(Error::NotSignedIn)?;
            let key = claim_id.to_string();
            if view::claim(c, &key)?.is_none() && view::job(c, &key)?.is_none() {
                return Err(Error::invalid(
                    ErrorCode::NotFound,
                    "that claim is not on this device; sync and try again",
                ));
            }
            let tx = c.transaction()?;
            let row = outbox::enqueue(
                &tx,
                &Command::RequestTransition { claim_id, request },
                Utc::now(),
            )?;
            tx.commit()?;
            Ok(row.client_seq)
        })
        .await
    }

    /// Hides a refusal the user has seen; see [`crate::Core::dismiss_rejected`].
    pub(crate) async fn dismiss_rejected(&self, client_seq: u64) -> Result<bool> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let found = outbox::dismiss(&tx, client_seq)?;
            if found {
                view::forget_refused(&tx, client_seq)?;
            }
            tx.commit()?;
            Ok(found)
        })
        .await
    }
}
