//! The plan catalog and premium quotes.

use axum::Json;
use axum::extract::{Query, State};
use glassguard_protocol::api::{Page, Plan, Quote};
use glassguard_protocol::{ErrorCode, Money};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, Caller};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ApiResult};
use crate::plans::premium_for;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plans))
        .routes(routes!(quote))
}

/// Every plan.
#[utoipa::path(get, path = "/v1/plans", tag = "plans", responses((status = 200, body = Page<Plan>)))]
async fn list_plans(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Page<Plan>>> {
    state.authorize(&caller, Action::PlanList, &Resource::Collection("plans"))?;
    Ok(Json(Page {
        items: state.catalog.plans().to_vec(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct QuoteQuery {
    /// Device price in paise.
    device_price: i64,
}

/// Premiums of every plan for a device price.
#[utoipa::path(get, path = "/v1/plans/quote", tag = "plans", params(QuoteQuery), responses((status = 200, body = Page<Quote>)))]
async fn quote(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<QuoteQuery>,
) -> ApiResult<Json<Page<Quote>>> {
    state.authorize(&caller, Action::PlanList, &Resource::Collection("plans"))?;
    let price = Money::from_paise(q.device_price)?;
    let items: Vec<Quote> = state
        .catalog
        .plans()
        .iter()
        .filter_map(|p| {
            premium_for(p, price).map(|premium| Quote {
                plan_id: p.id.clone(),
                device_price: price,
                premium,
            })
        })
        .collect();
    if items.is_empty() {
        return Err(ApiError::rule(
            ErrorCode::NoPlanForPrice,
            "no plan covers a device at this price",
        ));
    }
    Ok(Json(Page { items }))
}
