//! Claims: filing (with the per-term limit taken atomically from the
//! policy), state transitions as conditional updates (a request made against
//! a state the claim has left is refused with the current state), the
//! timeline, documents and technicians' jobs.

use chrono::{DateTime, Utc};
use glassguard_protocol::api::{Claim, ClaimDocument, ClaimEvent, DocumentKind, Job};
use glassguard_protocol::{
    ClaimAction, ClaimId, ClaimState, DocumentId, Imei, Money, PartnerId, PhoneNumber, PolicyId,
    Role, UserId, VoucherId,
};
use sqlx::any::AnyRow;

use super::keys::RowCipher;
use super::policies::Scope;
use super::{
    AuditRecord, Result, Store, StoreError, from_ms, get, ms, parse, parse_opt, row::Columns,
    unwire, unwire_opt, wire,
};
use crate::crypto::Keyring;

/// A claim to file.
#[derive(Debug)]
pub struct NewClaim<'a> {
    /// Client-made id.
    pub id: ClaimId,
    /// Policy.
    pub policy_id: PolicyId,
    /// Customer.
    pub customer_id: UserId,
    /// Selling partner.
    pub partner_id: Option<PartnerId>,
    /// Incident time.
    pub incident_at: DateTime<Utc>,
    /// Narrative.
    pub narrative: &'a str,
    /// Contact phone.
    pub contact_phone: &'a PhoneNumber,
    /// Photo references.
    pub photo_refs: &'a [String],
    /// The policy's claims-per-term limit.
    pub claims_per_term: u32,
}

/// The outcome of filing.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// Filed.
    Created,
    /// This id was filed before on the same policy (a retry).
    Replayed,
    /// The id is already used for another policy.
    IdTaken,
    /// The policy has no claims left this term.
    ClaimsPerTermExceeded,
}

/// A voucher to issue with a transition.
#[derive(Debug, Clone)]
pub struct NewVoucher {
    /// Id.
    pub id: VoucherId,
    /// Code.
    pub code: String,
    /// Customer.
    pub customer_id: UserId,
    /// Value.
    pub value: Money,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A transition to apply.
#[derive(Debug)]
pub struct Transition<'a> {
    /// Claim.
    pub claim_id: ClaimId,
    /// State the caller saw.
    pub expected: ClaimState,
    /// Action.
    pub action: ClaimAction,
    /// Resulting state.
    pub to: ClaimState,
    /// Reason.
    pub reason: Option<&'a str>,
    /// Technician to allocate.
    pub technician: Option<UserId>,
    /// Documents to request.
    pub documents: Option<&'a [DocumentKind]>,
    /// Voucher to issue.
    pub voucher: Option<NewVoucher>,
    /// Give the claim back to the policy's per-term allowance (rejection).
    pub release_claim_slot: bool,
    /// Who.
    pub actor_id: UserId,
    /// Their role.
    pub actor_role: Role,
    /// SMS to the customer.
    pub notify: Option<(PhoneNumber, String)>,
}

/// The outcome of a transition.
#[derive(Debug, Clone, PartialEq)]
pub enum TransitionOutcome {
    /// Applied.
    Done,
    /// The claim is no longer in the expected state.
    Stale(ClaimState),
    /// No such claim.
    NotFound,
}

/// A claim as stored.
pub type ClaimRow = Claim;

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn decode(keys: &Keyring, r: &(impl Columns + ?Sized)) -> Result<Claim> {
    let id: String = get(r, "id")?;
    let c = RowCipher::open(keys, "claims", &id, get(r, "dek")?)?;
    Ok(Claim {
        id: parse(r, "id")?,
        policy_id: parse(r, "policy_id")?,
        customer_id: parse(r, "customer_id")?,
        partner_id: parse_opt(r, "partner_id")?,
        state: unwire(r, "state")?,
        resolution: unwire_opt(r, "resolution")?,
        incident_at: from_ms(get(r, "incident_at")?)?,
        narrative: c.open_str("narrative", &get::<Vec<u8>>(r, "narrative_enc")?)?,
        contact_phone: PhoneNumber::parse(
            &c.open_str("contact_phone", &get::<Vec<u8>>(r, "contact_phone_enc")?)?,
        )
        .map_err(corrupt)?,
        photo_refs: serde_json::from_str(&get::<String>(r, "photo_refs")?).map_err(corrupt)?,
        technician_id: parse_opt(r, "technician_id")?,
        reason: get(r, "reason")?,
        documents_requested: serde_json::from_str(&get::<String>(r, "documents_requested")?)
            .map_err(corrupt)?,
        voucher_id: parse_opt(r, "voucher_id")?,
        created_at: from_ms(get(r, "created_at")?)?,
        updated_at: from_ms(get(r, "updated_at")?)?,
    })
}

// One row of the timeline; the arguments are its columns.
#[allow(clippy::too_many_arguments)]
async fn event(
    conn: &mut sqlx::AnyConnection,
    claim: &ClaimId,
    at: DateTime<Utc>,
    from: Option<ClaimState>,
    to: ClaimState,
    action: ClaimAction,
    actor: (UserId, Role),
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO claim_events (id, claim_id, at, from_state, to_state, action, actor_id, actor_role, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(claim.to_string())
    .bind(ms(at))
    .bind(from.map(|s| s.as_str().to_string()))
    .bind(to.as_str().to_string())
    .bind(action.as_str().to_string())
    .bind(actor.0.to_string())
    .bind(actor.1.as_str().to_string())
    .bind(reason.map(str::to_string))
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Files a claim: takes one of the policy's claims for the term, stores
    /// the claim and its first event, queues the SMS and audits, atomically.
    pub async fn file_claim(
        &self,
        keys: &Keyring,
        n: &NewClaim<'_>,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<CreateOutcome> {
        let mut tx = self.begin().await?;
        let r = file_claim_on(&mut tx, keys, n, now, audit).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// One claim: one query, two fields decrypted.
    pub async fn claim(&self, keys: &Keyring, id: &ClaimId) -> Result<Option<Claim>> {
        let lite = self.lite_read(|c| {
            let mut stmt = c.prepare_cached("SELECT * FROM claims WHERE id = ?1")?;
            let mut rows = stmt.query([id.to_string()])?;
            rows.next()?.map(|r| decode(keys, r)).transpose()
        });
        match lite {
            Some(found) => found,
            None => claim_in(self.reader(), keys, id).await,
        }
    }

    /// Claims in scope, optionally in one state, oldest first (a queue).
    pub async fn list_claims(
        &self,
        keys: &Keyring,
        scope: Scope,
        state: Option<ClaimState>,
    ) -> Result<Vec<Claim>> {
        let rows = sqlx::query(
            "SELECT * FROM claims WHERE (CAST($1 AS TEXT) IS NULL OR customer_id = $1) AND (CAST($2 AS TEXT) IS NULL OR partner_id = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR technician_id = $3) AND (CAST($4 AS TEXT) IS NULL OR state = $4) ORDER BY id LIMIT 500",
        )
        .bind(scope.customer())
        .bind(scope.partner())
        .bind(scope.technician())
        .bind(state.map(|s| s.as_str().to_string()))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| decode(keys, r)).collect()
    }

    /// Applies a transition if the claim is still where the caller saw it.
    pub async fn transition_claim(
        &self,
        keys: &Keyring,
        t: &Transition<'_>,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<TransitionOutcome> {
        let mut tx = self.begin().await?;
        let r = transition_claim_on(&mut tx, keys, t, now, audit).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// A claim's timeline, oldest first.
    pub async fn claim_events(&self, id: &ClaimId) -> Result<Vec<ClaimEvent>> {
        let rows = sqlx::query("SELECT * FROM claim_events WHERE claim_id = $1 ORDER BY id")
            .bind(id.to_string())
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let action: String = get(r, "action")?;
                Ok(ClaimEvent {
                    at: from_ms(get(r, "at")?)?,
                    from: get::<Option<String>>(r, "from_state")?
                        .and_then(|s| ClaimState::from_name(&s)),
                    to: unwire(r, "to_state")?,
                    action: serde_json::from_value(serde_json::Value::String(action))
                        .map_err(corrupt)?,
                    actor_role: unwire(r, "actor_role")?,
                    reason: get(r, "reason")?,
                })
            })
            .collect()
    }

    /// Attaches a document to a claim.
    pub async fn add_claim_document(
        &self,
        claim: &ClaimId,
        kind: DocumentKind,
        object_ref: &str,
        by: &UserId,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<ClaimDocument> {
        let doc = ClaimDocument {
            id: DocumentId::new(),
            claim_id: *claim,
            kind,
            object_ref: object_ref.to_string(),
            created_at: from_ms(ms(now))?,
        };
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO claim_documents (id, claim_id, kind, object_ref, uploaded_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(doc.id.to_string())
            .bind(claim.to_string())
            .bind(wire(&kind))
            .bind(object_ref.to_string())
            .bind(by.to_string())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        super::audit::append(&mut tx, now, audit).await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// A claim's documents.
    pub async fn claim_documents(&self, claim: &ClaimId) -> Result<Vec<ClaimDocument>> {
        let rows = sqlx::query("SELECT * FROM claim_documents WHERE claim_id = $1 ORDER BY id")
            .bind(claim.to_string())
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ClaimDocument {
                    id: parse(r, "id")?,
                    claim_id: parse(r, "claim_id")?,
                    kind: unwire(r, "kind")?,
                    object_ref: get(r, "object_ref")?,
                    created_at: from_ms(get(r, "created_at")?)?,
                })
            })
            .collect()
    }

    /// A technician's jobs with the device details they need.
    pub async fn jobs(&self, keys: &Keyring, technician: &UserId) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "SELECT c.*, p.brand, p.model, p.imei_enc, p.dek AS p_dek FROM claims c JOIN policies p ON p.id = c.policy_id \
             WHERE c.technician_id = $1 ORDER BY c.id",
        )
        .bind(technician.to_string())
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| decode_job(keys, r)).collect()
    }
}

/// The short form of a claim id people can read out on the phone.
pub fn short(id: &ClaimId) -> String {
    let s = id.to_string();
    s[s.len() - 8..].to_uppercase()
}

/// The body of [`Store::file_claim`], on the caller's transaction (the sync
/// push applies it together with the mutation record).
pub async fn file_claim_on(
    conn: &mut sqlx::AnyConnection,
    keys: &Keyring,
    n: &NewClaim<'_>,
    now: DateTime<Utc>,
    audit: &AuditRecord,
) -> Result<CreateOutcome> {
    let id = n.id.to_string();
    let existing: Option<String> = sqlx::query_scalar("SELECT policy_id FROM claims WHERE id = $1")
        .bind(id.clone())
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(p) = existing {
        return Ok(if p == n.policy_id.to_string() {
            CreateOutcome::Replayed
        } else {
            CreateOutcome::IdTaken
        });
    }
    let slot = sqlx::query("UPDATE policies SET claims_used = claims_used + 1, updated_at = $1 WHERE id = $2 AND claims_used < $3")
        .bind(ms(now))
        .bind(n.policy_id.to_string())
        .bind(i64::from(n.claims_per_term))
        .execute(&mut *conn)
        .await?;
    if slot.rows_affected() == 0 {
        return Ok(CreateOutcome::ClaimsPerTermExceeded);
    }
    let (c, dek) = RowCipher::create(keys, "claims", &id)?;
    sqlx::query(
        "INSERT INTO claims (id, policy_id, customer_id, partner_id, state, incident_at, dek, narrative_enc, contact_phone_enc, \
         photo_refs, documents_requested, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'submitted', $5, $6, $7, $8, $9, '[]', 1, $10, $10)",
    )
    .bind(id)
    .bind(n.policy_id.to_string())
    .bind(n.customer_id.to_string())
    .bind(n.partner_id.map(|p| p.to_string()))
    .bind(ms(n.incident_at))
    .bind(dek)
    .bind(c.seal("narrative", n.narrative))
    .bind(c.seal("contact_phone", n.contact_phone.as_str()))
    .bind(serde_json::to_string(n.photo_refs).map_err(corrupt)?)
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    event(
        &mut *conn,
        &n.id,
        now,
        None,
        ClaimState::Submitted,
        ClaimAction::Submit,
        (n.customer_id, Role::Customer),
        None,
    )
    .await?;
    let body = format!(
        "Glassguard: we received your claim {}. We will message you at every step.",
        short(&n.id)
    );
    super::changes::append(
        &mut *conn,
        super::changes::Entity::Claim,
        &n.id.to_string(),
        now,
    )
    .await?;
    // The policy's claims_used moved too.
    super::changes::append(
        &mut *conn,
        super::changes::Entity::Policy,
        &n.policy_id.to_string(),
        now,
    )
    .await?;
    super::notifications::enqueue_sms(&mut *conn, keys, "claim_stage", n.contact_phone, &body, now)
        .await?;
    super::audit::append(&mut *conn, now, audit).await?;
    Ok(CreateOutcome::Created)
}

/// The body of [`Store::transition_claim`], on the caller's transaction (the sync
/// push applies it together with the mutation record).
pub async fn transition_claim_on(
    conn: &mut sqlx::AnyConnection,
    keys: &Keyring,
    t: &Transition<'_>,
    now: DateTime<Utc>,
    audit: &AuditRecord,
) -> Result<TransitionOutcome> {
    let id = t.claim_id.to_string();
    let docs = t
        .documents
        .map(serde_json::to_string)
        .transpose()
        .map_err(corrupt)?;
    let done = sqlx::query(
        "UPDATE claims SET state = $1, resolution = COALESCE($2, resolution), technician_id = COALESCE($3, technician_id), \
         reason = COALESCE($4, reason), documents_requested = COALESCE($5, documents_requested), \
         voucher_id = COALESCE($6, voucher_id), version = version + 1, updated_at = $7 WHERE id = $8 AND state = $9",
    )
    .bind(t.to.as_str().to_string())
    .bind(t.action.resolution().map(|r| r.as_str().to_string()))
    .bind(t.technician.map(|u| u.to_string()))
    .bind(t.reason.map(str::to_string))
    .bind(docs)
    .bind(t.voucher.as_ref().map(|v| v.id.to_string()))
    .bind(ms(now))
    .bind(id.clone())
    .bind(t.expected.as_str().to_string())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        let cur: Option<String> = sqlx::query_scalar("SELECT state FROM claims WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(match cur.and_then(|s| ClaimState::from_name(&s)) {
            Some(s) => TransitionOutcome::Stale(s),
            None => TransitionOutcome::NotFound,
        });
    }
    if t.release_claim_slot {
        sqlx::query(
            "UPDATE policies SET claims_used = claims_used - 1 WHERE id = (SELECT policy_id FROM claims WHERE id = $1) AND claims_used > 0",
        )
        .bind(id.clone())
        .execute(&mut *conn)
        .await?;
        let policy: String = sqlx::query_scalar("SELECT policy_id FROM claims WHERE id = $1")
            .bind(id.clone())
            .fetch_one(&mut *conn)
            .await?;
        super::changes::append(&mut *conn, super::changes::Entity::Policy, &policy, now).await?;
    }
    if let Some(v) = &t.voucher {
        sqlx::query(
            "INSERT INTO vouchers (id, code, claim_id, customer_id, value, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(v.id.to_string())
        .bind(v.code.clone())
        .bind(id.clone())
        .bind(v.customer_id.to_string())
        .bind(v.value.paise())
        .bind(ms(v.expires_at))
        .bind(ms(now))
        .execute(&mut *conn)
        .await?;
    }
    event(
        &mut *conn,
        &t.claim_id,
        now,
        Some(t.expected),
        t.to,
        t.action,
        (t.actor_id, t.actor_role),
        t.reason,
    )
    .await?;
    super::changes::append(
        &mut *conn,
        super::changes::Entity::Claim,
        &t.claim_id.to_string(),
        now,
    )
    .await?;
    if let Some(v) = &t.voucher {
        super::changes::append(
            &mut *conn,
            super::changes::Entity::Voucher,
            &v.id.to_string(),
            now,
        )
        .await?;
    }
    if let Some((to, body)) = &t.notify {
        super::notifications::enqueue_sms(&mut *conn, keys, "claim_stage", to, body, now).await?;
    }
    super::audit::append(&mut *conn, now, audit).await?;
    Ok(TransitionOutcome::Done)
}

/// [`Store::claim`] on any executor: a pool, or the transaction a sync
/// push applies its batch on (so it sees the batch's own earlier effects).
pub async fn claim_in<'e, E>(exec: E, keys: &Keyring, id: &ClaimId) -> Result<Option<Claim>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let r = sqlx::query("SELECT * FROM claims WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(exec)
        .await?;
    r.map(|r| decode(keys, &r)).transpose()
}

/// One job (a claim with its device), on any executor.
pub async fn job_in<'e, E>(exec: E, keys: &Keyring, claim: &ClaimId) -> Result<Option<Job>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let r = sqlx::query(
        "SELECT c.*, p.brand, p.model, p.imei_enc, p.dek AS p_dek FROM claims c JOIN policies p ON p.id = c.policy_id WHERE c.id = $1",
    )
    .bind(claim.to_string())
    .fetch_optional(exec)
    .await?;
    r.map(|r| decode_job(keys, &r)).transpose()
}

fn decode_job(keys: &Keyring, r: &AnyRow) -> Result<Job> {
    let pid: String = get(r, "policy_id")?;
    let pc = RowCipher::open(keys, "policies", &pid, get(r, "p_dek")?)?;
    Ok(Job {
        claim: decode(keys, r)?,
        brand: get(r, "brand")?,
        model: get(r, "model")?,
        imei: Imei::parse(&pc.open_str("imei", &get::<Vec<u8>>(r, "imei_enc")?)?)
            .map_err(corrupt)?,
    })
}
