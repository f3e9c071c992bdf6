//! Users: everyone who signs in. Phone, name and email are encrypted; the
//! phone's blind index is how a user is found at sign-in.

use chrono::{DateTime, Utc};
use glassguard_protocol::api::UserSummary;
use glassguard_protocol::{PartnerId, PhoneNumber, Role, UserId};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::keys::{RowCipher, blind, index};
use super::{Result, Store, get, ms, parse, parse_opt, unwire};
use crate::crypto::Keyring;

/// A user, decrypted.
#[derive(Clone, Debug)]
pub struct UserRow {
    /// Id.
    pub id: UserId,
    /// Role.
    pub role: Role,
    /// Partner, for partner users.
    pub partner_id: Option<PartnerId>,
    /// Service centre, for technicians.
    pub service_centre: Option<String>,
    /// False once deactivated.
    pub active: bool,
    /// Phone.
    pub phone: PhoneNumber,
    /// Name.
    pub name: Option<String>,
}

impl UserRow {
    /// As others see the user.
    pub fn summary(&self) -> UserSummary {
        UserSummary {
            id: self.id,
            role: self.role,
            name: self.name.clone(),
            phone: self.phone.clone(),
            partner_id: self.partner_id,
            service_centre: self.service_centre.clone(),
            active: self.active,
        }
    }
}

/// A user to create.
#[derive(Clone, Debug)]
pub struct NewUser<'a> {
    /// Id.
    pub id: UserId,
    /// Role.
    pub role: Role,
    /// Phone.
    pub phone: &'a PhoneNumber,
    /// Name.
    pub name: Option<&'a str>,
    /// Email.
    pub email: Option<&'a str>,
    /// Partner.
    pub partner_id: Option<PartnerId>,
    /// Service centre.
    pub service_centre: Option<&'a str>,
}

fn decode(keys: &Keyring, r: &AnyRow) -> Result<UserRow> {
    let id: String = get(r, "id")?;
    let c = RowCipher::open(keys, "users", &id, get(r, "dek")?)?;
    Ok(UserRow {
        id: parse(r, "id")?,
        role: unwire(r, "role")?,
        partner_id: parse_opt(r, "partner_id")?,
        service_centre: get(r, "service_centre")?,
        active: get::<i64>(r, "active")? != 0,
        phone: PhoneNumber::parse(&c.open_str("phone", &get::<Vec<u8>>(r, "phone_enc")?)?)
            .map_err(|e| super::StoreError::Corrupt(e.message))?,
        name: c.open_opt("name", get(r, "name_enc")?)?,
    })
}

/// Inserts a user; `None` when the phone already belongs to someone.
pub async fn insert_user(
    conn: &mut AnyConnection,
    keys: &Keyring,
    u: &NewUser<'_>,
    now: DateTime<Utc>,
) -> Result<Option<UserRow>> {
    let id = u.id.to_string();
    let (c, dek) = RowCipher::create(keys, "users", &id)?;
    let done = sqlx::query(
        "INSERT INTO users (id, role, phone_index, partner_id, service_centre, active, dek, phone_enc, name_enc, email_enc, created_at) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $10) ON CONFLICT (phone_index) DO NOTHING",
    )
    .bind(id)
    .bind(u.role.as_str().to_string())
    .bind(blind(keys, index::PHONE, u.phone.as_str()))
    .bind(u.partner_id.map(|p| p.to_string()))
    .bind(u.service_centre.map(str::to_string))
    .bind(dek)
    .bind(c.seal("phone", u.phone.as_str()))
    .bind(c.seal_opt("name", u.name))
    .bind(c.seal_opt("email", u.email))
    .bind(ms(now))
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    Ok(Some(UserRow {
        id: u.id,
        role: u.role,
        partner_id: u.partner_id,
        service_centre: u.service_centre.map(str::to_string),
        active: true,
        phone: u.phone.clone(),
        name: u.name.map(str::to_string),
    }))
}

/// A user by phone, on the caller's connection.
pub async fn user_by_phone_on(
    conn: &mut AnyConnection,
    keys: &Keyring,
    phone: &PhoneNumber,
) -> Result<Option<UserRow>> {
    let r = sqlx::query("SELECT * FROM users WHERE phone_index = $1")
        .bind(blind(keys, index::PHONE, phone.as_str()))
        .fetch_optional(conn)
        .await?;
    r.map(|r| decode(keys, &r)).transpose()
}

/// Sets a user's name where none is known yet.
pub async fn fill_name(
    conn: &mut AnyConnection,
    keys: &Keyring,
    user: &UserId,
    name: &str,
) -> Result<()> {
    let r = sqlx::query("SELECT dek FROM users WHERE id = $1 AND name_enc IS NULL")
        .bind(user.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(r) = r {
        let c = RowCipher::open(keys, "users", &user.to_string(), get(&r, "dek")?)?;
        sqlx::query("UPDATE users SET name_enc = $1 WHERE id = $2 AND name_enc IS NULL")
            .bind(c.seal("name", name))
            .bind(user.to_string())
            .execute(conn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// A user by phone.
    pub async fn user_by_phone(
        &self,
        keys: &Keyring,
        phone: &PhoneNumber,
    ) -> Result<Option<UserRow>> {
        let mut conn = self.reader().acquire().await?;
        user_by_phone_on(&mut conn, keys, phone).await
    }

    /// A user by id.
    pub async fn user_by_id(&self, keys: &Keyring, id: &UserId) -> Result<Option<UserRow>> {
        user_by_id_in(self.reader(), keys, id).await
    }

    /// Creates a user in its own transaction; `None` when the phone is taken.
    pub async fn create_user(
        &self,
        keys: &Keyring,
        u: &NewUser<'_>,
        now: DateTime<Utc>,
        audit: &super::AuditRecord,
    ) -> Result<Option<UserRow>> {
        let mut tx = self.begin().await?;
        let row = insert_user(&mut tx, keys, u, now).await?;
        if row.is_some() {
            super::audit::append(&mut tx, now, audit).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Users, optionally by role and partner.
    pub async fn list_users(
        &self,
        keys: &Keyring,
        role: Option<Role>,
        partner: Option<PartnerId>,
    ) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(
            "SELECT * FROM users WHERE (CAST($1 AS TEXT) IS NULL OR role = $1) AND (CAST($2 AS TEXT) IS NULL OR partner_id = $2) ORDER BY id LIMIT 500",
        )
        .bind(role.map(|r| r.as_str().to_string()))
        .bind(partner.map(|p| p.to_string()))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| decode(keys, r)).collect()
    }
}

/// [`Store::user_by_id`] on any executor: a pool, or the transaction a sync
/// push applies its batch on (so it sees the batch's own earlier effects).
pub async fn user_by_id_in<'e, E>(exec: E, keys: &Keyring, id: &UserId) -> Result<Option<UserRow>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let r = sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(exec)
        .await?;
    r.map(|r| decode(keys, &r)).transpose()
}
