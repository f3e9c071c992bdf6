//! Insurer users: adjusters, technicians and admins, created by admins.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use glassguard_protocol::api::{Page, UserCreate, UserSummary};
use glassguard_protocol::{ErrorCode, Role, UserId};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, Caller};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ApiResult};
use crate::store::NewUser;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_user, list_users))
}

/// Create an adjuster, technician or admin.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = UserCreate, responses((status = 201, body = UserSummary)))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<UserCreate>,
) -> ApiResult<(StatusCode, Json<UserSummary>)> {
    state.authorize(&caller, Action::UserCreate, &Resource::Collection("users"))?;
    if !matches!(req.role, Role::Adjuster | Role::Technician | Role::Admin) {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "insurer users are adjusters, technicians or admins",
        ));
    }
    if req.name.trim().is_empty() || req.name.chars().count() > 120 {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "name must be 1 to 120 characters",
        ));
    }
    let new = NewUser {
        id: UserId::new(),
        role: req.role,
        phone: &req.phone,
        name: Some(&req.name),
        email: None,
        partner_id: None,
        service_centre: req.service_centre.as_deref(),
    };
    let rec = state.audit(
        &caller,
        Action::UserCreate,
        "user",
        Some(new.id.to_string()),
    );
    let user = state
        .store
        .create_user(&state.keys, &new, state.now(), &rec)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                ErrorCode::PhoneInUse,
                "this phone number already belongs to another account",
            )
        })?;
    Ok((StatusCode::CREATED, Json(user.summary())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct UserFilter {
    /// Only users with this role (e.g. technician, to allocate a claim).
    role: Option<Role>,
}

/// Users, e.g. technicians to allocate to.
#[utoipa::path(get, path = "/v1/users", tag = "users", params(UserFilter), responses((status = 200, body = Page<UserSummary>)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<UserFilter>,
) -> ApiResult<Json<Page<UserSummary>>> {
    state.authorize(&caller, Action::UserList, &Resource::Collection("users"))?;
    let items = state
        .store
        .list_users(&state.keys, f.role, None)
        .await?
        .iter()
        .map(|u| u.summary())
        .collect();
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::UserList, "user", None),
        )
        .await?;
    Ok(Json(Page { items }))
}
