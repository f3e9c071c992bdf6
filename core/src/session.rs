//! Sessions: OTP sign-in, tokens in the encrypted store, and refresh.
//!
//! The device id is made once, on first open, and kept in `meta`; every
//! session is opened with it and every refresh presents it, because the
//! server binds refresh tokens to the device.
//!
//! Requests that need a user go through [`Shared::authed`]: it sends with
//! the stored access token and, if the server answers `token_expired`,
//! refreshes once and resends. Refresh tokens rotate and a reused one ends
//! the session on the server, so refreshes are single-flight: a caller that
//! finds the access token already replaced by another caller's refresh just
//! resends with the new one.
//!
//! Tokens and the user are never logged (`Session`'s `Debug` would print
//! them, so it is never formatted here).

use glassguard_protocol::api::{
    Me, OtpPurpose, OtpRequest, OtpSent, RefreshRequest, Session, SignInRequest,
};
use glassguard_protocol::{DeviceId, ErrorCode, PhoneNumber};
use reqwest::Method;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Shared;
use crate::client::{Body, RawAnswer, Trace};
use crate::error::{Error, Result};
use crate::store::{meta_get, meta_set};
use crate::view;

const DEVICE_ID: &str = "device_id";
const LAST_USER: &str = "last_user_id";

/// This device's id, made and stored on first use.
pub(crate) fn device_id(conn: &Connection) -> Result<DeviceId> {
    if let Some(v) = meta_get(conn, DEVICE_ID)? {
        return DeviceId::parse(&v).map_err(|_| Error::corrupt("device id"));
    }
    let id = DeviceId::new();
    meta_set(conn, DEVICE_ID, &id.to_string())?;
    Ok(id)
}

/// The stored `(access, refresh)` tokens.
fn tokens(conn: &Connection) -> Result<Option<(String, String)>> {
    Ok(conn
        .query_row(
            "SELECT access_token, refresh_token FROM session WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// The signed-in user, if any.
pub(crate) fn me(conn: &Connection) -> Result<Option<Me>> {
    conn.query_row("SELECT user_json FROM session WHERE id = 1", [], |r| {
        r.get::<_, String>(0)
    })
    .optional()?
    .map(|j| serde_json::from_str(&j).map_err(Error::from))
    .transpose()
}

fn save(conn: &Connection, s: &Session) -> Result<()> {
    conn.execute(
        "INSERT INTO session (id, access_token, refresh_token, user_json) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET access_token = excluded.access_token,
             refresh_token = excluded.refresh_token, user_json = excluded.user_json",
        params![
            s.access_token,
            s.refresh_token,
            serde_json::to_string(&s.user)?
        ],
    )?;
    Ok(())
}

fn clear(conn: &Connection) -> Result<()> {
    conn.execute("DELETE FROM session", [])?;
    Ok(())
}

impl Shared {
    /// Asks the server to text a code to `phone`.
    pub(crate) async fn request_otp(
        &self,
        phone: PhoneNumber,
        purpose: OtpPurpose,
    ) -> Result<OtpSent> {
        let body = OtpRequest { phone, purpose };
        self.client
            .send(
                Method::POST,
                "v1/auth/otp",
                &[],
                Body::Json(&body),
                None,
                &Trace::new(),
            )
            .await
    }

    /// Signs in with a code and stores the session. A different user than
    /// the last one gets an empty cached view (the previous user's data must
    /// not show); the outbox is kept.
    #[tracing::instrument(skip_all)]
    pub(crate) async fn sign_in(&self, phone: PhoneNumber, code: String) -> Result<Me> {
        let body = SignInRequest {
            phone,
            code,
            device_id: self.device_id,
        };
        let session: Session = self
            .client
            .send(
                Method::POST,
                "v1/auth/sign-in",
                &[],
                Body::Json(&body),
                None,
                &Trace::new(),
            )
            .await?;
        let me = session.user.clone();
        self.store
            .call(move |c| {
                let tx = c.transaction()?;
                let user = session.user.id.to_string();
                if meta_get(&tx, LAST_USER)?.as_deref() != Some(user.as_str()) {
                    view::clear(&tx)?;
                    meta_set(&tx, LAST_USER, &user)?;
                }
                save(&tx, &session)?;
                Ok(tx.commit()?)
            })
            .await?;
        tracing::info!(role = %me.role, "signed in");
        Ok(me)
    }

    /// Ends the session here and, best effort, on the server. The cached
    /// view goes with it; unsynced work stays in the outbox.
    pub(crate) async fn sign_out(&self) -> Result<()> {
        if let Some((access, _)) = self.store.call(|c| tokens(c)).await? {
            let sent: Result<()> = self
                .client
                .send(
                    Method::POST,
                    "v1/auth/sign-out",
                    &[],
                    Body::<()>::Empty,
                    Some(&access),
                    &Trace::new(),
                )
                .await;
            if let Err(e) = sent {
                tracing::info!(error = %e, "sign-out not confirmed by the server");
            }
        }
        self.store
            .call(|c| {
                let tx = c.transaction()?;
                clear(&tx)?;
                view::clear(&tx)?;
                Ok(tx.commit()?)
            })
            .await
    }

    /// Sends a request as the signed-in user, refreshing once on `token_expired`.
    pub(crate) async fn authed<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body<'_, B>,
        trace: &Trace,
    ) -> Result<T> {
        let (access, _) = self
            .store
            .call(|c| tokens(c))
            .await?
            .ok_or(Error::NotSignedIn)?;
        let first = self
            .client
            .send(method.clone(), path, query, body, Some(&access), trace)
            .await;
        match first {
            Err(e) if e.code() == Some(ErrorCode::TokenExpired) => {
                let access = self.refresh(&access, trace).await?;
                self.client
                    .send(method, path, query, body, Some(&access), trace)
                    .await
                    .map_err(session_ended)
            }
            other => other.map_err(session_ended),
        }
    }

    /// [`Shared::authed`] for a tus request: extra headers, raw bytes.
    pub(crate) async fn authed_raw(
        &self,
        method: Method,
        url: reqwest::Url,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
        trace: &Trace,
    ) -> Result<RawAnswer> {
        let (access, _) = self
            .store
            .call(|c| tokens(c))
            .await?
            .ok_or(Error::NotSignedIn)?;
        let first = self
            .client
            .raw(
                method.clone(),
                url.clone(),
                headers,
                body.clone(),
                Some(&access),
                trace,
            )
            .await;
        match first {
            Err(e) if e.code() == Some(ErrorCode::TokenExpired) => {
                let access = self.refresh(&access, trace).await?;
                self.client
                    .raw(method, url, headers, body, Some(&access), trace)
                    .await
                    .map_err(session_ended)
            }
            other => other.map_err(session_ended),
        }
    }

    /// Replaces the tokens, unless another caller already has since
    /// `stale_access` was read. Returns the access token to use.
    async fn refresh(&self, stale_access: &str, trace: &Trace) -> Result<String> {
        let _single_flight = self.refresh_lock.lock().await;
        let (access, refresh_token) = self
            .store
            .call(|c| tokens(c))
            .await?
            .ok_or(Error::NotSignedIn)?;
        if access != stale_access {
            return Ok(access);
        }
        let body = RefreshRequest {
            refresh_token,
            device_id: self.device_id,
        };
        let answer: Result<Session> = self
            .client
            .send(
                Method::POST,
                "v1/auth/refresh",
                &[],
                Body::Json(&body),
                None,
                trace,
            )
            .await;
        match answer {
            Ok(session) => {
                let access = session.access_token.clone();
                self.store.call(move |c| save(c, &session)).await?;
                tracing::debug!("tokens refreshed");
                Ok(access)
            }
            Err(e) if is_session_over(&e) => {
                // The refresh token is dead for good: forget it, so the UI
                // asks for a sign-in instead of retrying forever.
                self.store.call(|c| clear(c)).await?;
                Err(session_ended(e))
            }
            Err(e) => Err(e),
        }
    }
}

fn is_session_over(e: &Error) -> bool {
    e.code().is_some_and(is_session_over_code)
}

/// Maps the refusals that mean "sign in again" to [`Error::SessionEnded`].
fn session_ended(e: Error) -> Error {
    match e {
        Error::Refused {
            status: 401, code, ..
        } => Error::SessionEnded { code },
        Error::Refused { code, .. } if is_session_over_code(code) => Error::SessionEnded { code },
        other => other,
    }
}

fn is_session_over_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::RefreshTokenInvalid | ErrorCode::RefreshTokenReused | ErrorCode::DeviceMismatch
    )
}
